"""The simulator: its shared state and the ASGI entry point for both transports."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from simulator.asgi import Receive, Scope, Send, header, send_json
from simulator.config import SimulatorConfig
from simulator.errors import RequestError, upgrade_refusal
from simulator.faults import FaultBoard, FaultPlan, FaultSpecError
from simulator.host import describe
from simulator.http import serve_http
from simulator.introspection import Introspection, redact
from simulator.store import ResponseStore
from simulator.ws import SocketSession

FAULT_HEADER = "x-sim-faults"
FAULT_QUERY = "sim_faults"


class Simulator:
    """An offline Responses endpoint: ``GET /v1/responses`` (WebSocket) and ``POST`` (HTTP).

    One instance is one "server": its store outlives connections, its logs and oracle record
    what every connection saw, and ``faults`` is the in-process fault API for tests.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.store = ResponseStore(self.config.store_capacity)
        self.introspection = Introspection(self.config.log_capacity)
        self.faults = FaultBoard()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "http":
            await serve_http(self, scope, receive, send)
        elif scope["type"] == "lifespan":
            await _lifespan(receive, send)

    def authorize(self, scope: Scope) -> RequestError | None:
        """None if the request carries an acceptable bearer key, else the 401 to answer with."""
        value = header(scope, "authorization") or ""
        scheme, _, key = value.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return RequestError(
                401,
                None,
                "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.",
                None,
            )
        if self.config.api_keys and key not in self.config.api_keys:
            return RequestError(401, "invalid_api_key", "Incorrect API key provided.", None)
        return None

    def fault_plan(self, scope: Scope) -> FaultPlan:
        """The faults for this connection or request; a bad client spec raises FaultSpecError."""
        if not self.config.client_faults:
            return self.faults.take(None)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        specs = [header(scope, FAULT_HEADER) or "", *query.get(FAULT_QUERY, [])]
        return self.faults.take(";".join(filter(None, specs)))

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        refusal = self.authorize(scope)
        try:
            plan = self.fault_plan(scope)
        except FaultSpecError as exc:
            plan = FaultPlan()
            refusal = refusal or RequestError.invalid(FAULT_QUERY, str(exc))
        if refusal is None and plan.upgrade_status is not None:
            refusal = upgrade_refusal(plan.upgrade_status, plan.retry_after_s)
        if refusal is not None:
            await _deny_upgrade(scope, send, refusal)
            return
        log = self.introspection.open(
            "websocket",
            redact(scope.get("headers", [])),
            scope.get("query_string", b"").decode(),
            self.config.record_sends,
        )
        session = SocketSession(self, log, plan, send)
        await self.config.costs.pause(self.config.costs.handshake_ms)
        await send(
            {"type": "websocket.accept", "headers": [(b"x-sim-connection-id", log.id.encode())]}
        )
        await session.serve(receive)


async def _deny_upgrade(scope: Scope, send: Send, error: RequestError) -> None:
    """Refuse the upgrade with an HTTP status, where the server supports it (uvicorn does).

    Servers without the ASGI denial-response extension (daphne) can only answer 403.
    """
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps(error.http_body()).encode()
    headers = [(b"content-type", b"application/json")]
    headers += [(k.encode(), v.encode()) for k, v in error.headers.items()]
    await send(
        {"type": "websocket.http.response.start", "status": error.status, "headers": headers}
    )
    await send({"type": "websocket.http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


__all__ = ["Simulator", "describe", "send_json"]
