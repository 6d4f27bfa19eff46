"""The embedded simulator: the default upstream, mounted at /v1/ on the app's own port.

Every visitor can reach that port, so the simulator there serves this process alone: only its
random key (``settings.OPENAI_API_KEY``, see settings), only from loopback, and without the
operator's hooks (``/_sim/`` introspection, fault injection), which stay with the standalone
``manage.py simulator``.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings

from simulator import Simulator, SimulatorConfig
from simulator.asgi import Receive, Scope, Send, send_json

SIMULATOR_PREFIX = "/v1/"
CLOSE_POLICY = 1008  # before accept: daphne answers the upgrade with 403


def embedded_simulator() -> Simulator:
    config = SimulatorConfig.for_profile(
        settings.SIMULATOR_PROFILE,
        seed=settings.SIMULATOR_SEED,
        api_keys=frozenset({settings.OPENAI_API_KEY}),
        introspection=False,
        client_faults=False,
    )
    return Simulator(config)


def for_simulator(scope: Scope) -> bool:
    """The request is for the embedded simulator (mounted only when it is the upstream)."""
    return (
        settings.UPSTREAM_IS_EMBEDDED
        and scope["type"] in ("http", "websocket")
        and scope["path"].startswith(SIMULATOR_PREFIX)
    )


class LoopbackOnly:
    """Refuse clients not on this host: the playground reaches its simulator on 127.0.0.1."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _is_loopback(scope.get("client")):
            await self.simulator(scope, receive, send)
        elif scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": CLOSE_POLICY})
        else:
            message = "The embedded simulator serves this playground only."
            error = {"message": message, "type": "invalid_request_error", "code": "forbidden"}
            await send_json(send, 403, {"error": error})


def _is_loopback(client: object) -> bool:
    if not isinstance(client, (list, tuple)) or not client:
        return False  # unknown (a Unix socket, a test scope): not provably this host
    try:
        address = ipaddress.ip_address(str(client[0]))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
