"""HTTP: ``POST /v1/responses`` (SSE or JSON), ``GET /v1/responses/{id}``, and introspection."""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import asdict
from typing import Any

from simulator.asgi import BodyTooLarge, Receive, Scope, Send, read_body, send_json
from simulator.engine import TERMINAL, Resolved, Turn, mode_of
from simulator.errors import RequestError, injected, upgrade_refusal
from simulator.faults import FaultPlan, FaultSpecError
from simulator.host import Host, describe
from simulator.introspection import ConnectionLog, OracleEntry, RequestRecord, redact
from simulator.requests import CreateRequest, parse_create

RETRIEVE = re.compile(r"/responses/([A-Za-z0-9_-]+)$")
INTROSPECT = re.compile(r"/_sim/(.*)$")


async def serve_http(sim: Host, scope: Scope, receive: Receive, send: Send) -> None:
    path, method = scope["path"].rstrip("/"), scope["method"]
    introspect = INTROSPECT.search(path)  # before RETRIEVE, which /_sim/responses/{id} matches
    refusal = sim.authorize(scope)
    if introspect and not sim.config.introspection:
        await _not_found(send, f"Nothing at /_sim/{introspect.group(1)}.")
    elif refusal is not None:
        await send_json(send, refusal.status, refusal.http_body())
    elif introspect:
        await _introspect(sim, introspect.group(1), method, receive, send)
    elif path.endswith("/responses") and method == "POST":
        await _create(sim, scope, receive, send)
    elif (match := RETRIEVE.search(path)) and method == "GET":
        await _retrieve(sim, match.group(1), send)
    elif path.endswith("/models") and method == "GET":
        await send_json(send, 200, models_page())
    else:
        error = RequestError(404, None, f"Unknown path: {method} {scope['path']}.", None)
        await send_json(send, 404, error.http_body())


# What GET /v1/models lists, as the OpenAI API does. The simulator answers to any model name the
# same way; these are suggestions for a client's model picker.
MODELS = ("sim", "sim-mini", "sim-large")


def models_page() -> dict[str, Any]:
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "simulator"} for name in MODELS
    ]
    return {"object": "list", "data": data}


async def _create(sim: Host, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        plan = sim.fault_plan(scope)
        body = await read_body(receive, sim.config.max_frame_bytes)
    except FaultSpecError as exc:
        await _error(send, RequestError.invalid("sim_faults", str(exc)))
        return
    except BodyTooLarge as exc:
        await _error(send, RequestError(413, "request_too_large", str(exc), None))
        return
    if plan.upgrade_status is not None:
        await _error(send, upgrade_refusal(plan.upgrade_status, plan.retry_after_s))
        return
    log = sim.introspection.open(
        "http",
        redact(scope.get("headers", [])),
        scope.get("query_string", b"").decode(),
        sim.config.record_sends,
    )
    try:
        request = _parse(sim, body)
        turn = _turn(sim, plan, request, log)
    except RequestError as exc:
        await _error(send, exc)
        return
    if request.stream:
        await _stream(sim, plan, turn, log, send)
    else:
        await _complete(sim, turn, log, send)


def _parse(sim: Host, body: bytes) -> CreateRequest:
    try:
        fields = json.loads(body)
    except ValueError as exc:
        raise RequestError.invalid(
            None, "We could not parse the JSON body of your request.", "invalid_json"
        ) from exc
    if not isinstance(fields, dict):
        raise RequestError.invalid(None, "The request body must be a JSON object.", "invalid_json")
    return parse_create(fields, "http", sim.config, len(body))


def _turn(sim: Host, plan: FaultPlan, request: CreateRequest, log: ConnectionLog) -> Turn:
    record = RequestRecord(
        1, log.now_ms(), request.size, mode_of(request), request.previous_response_id
    )
    log.requests.append(record)
    parent = None
    if request.previous_response_id:
        # Over HTTP there is no connection cache: a parent is loaded from the store or not at all.
        parent = sim.store.get(request.previous_response_id)
        if parent is None:
            record.status, record.cache = "error:previous_response_not_found", "miss"
            raise RequestError.not_found(request.previous_response_id)
        record.cache = "hydrated"
    if 1 in plan.error_frames:
        raise injected(plan.error_frames[1][0])
    resolved = Resolved.build(request, parent, record.cache)
    turn = Turn(
        request,
        resolved,
        sim.config.costs,
        sim.config.seed,
        None,
        fail_with=plan.response_failed.get(1),
        hydrate=parent is not None,
    )
    record.response_id, record.context_hash = turn.id, turn.context_hash
    record.input_tokens, record.cached_tokens = resolved.input_tokens, resolved.cached_tokens
    record.context_items = len(resolved.context)
    return turn


async def _stream(sim: Host, plan: FaultPlan, turn: Turn, log: ConnectionLog, send: Send) -> None:
    await sim.config.costs.pause(sim.config.costs.http_request_ms)
    headers = [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    sent = 0
    record = log.requests[-1]
    async for event in turn.events():
        if event["type"] in TERMINAL:
            _settle(sim, turn, log)
        if sent == 0:
            record.first_event_ms = log.now_ms()
        if record.first_token_ms is None and "delta" in event:
            record.first_token_ms = log.now_ms()
        data = json.dumps(event, separators=(",", ":"))
        chunk = f"event: {event['type']}\ndata: {data}\n\n".encode()
        at = time.monotonic()
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        log.sent(1, event, at)
        sent += 1
        log.events_sent += 1
        if plan.stall_after_events and plan.stall_after_events.due(1, sent):
            await asyncio.sleep((plan.stall_after_events.value or 3_600_000) / 1000.0)
        if plan.drop_after_events and plan.drop_after_events.due(1, sent):
            log.close_reason = f"fault: drop_after_events={sent}"
            return  # returning mid-body makes the server abort the connection
        if plan.close_after_events and plan.close_after_events.due(1, sent):
            log.close_reason = f"fault: close_after_events={sent}"
            break
    await send({"type": "http.response.body", "body": b""})
    log.closed = True


async def _complete(sim: Host, turn: Turn, log: ConnectionLog, send: Send) -> None:
    await sim.config.costs.pause(sim.config.costs.http_request_ms)
    final: dict[str, Any] = {}
    async for event in turn.events():
        if event["type"] in TERMINAL:
            _settle(sim, turn, log)
            final = event["response"]
    await send_json(send, 200, final)
    log.closed = True


def _settle(sim: Host, turn: Turn, log: ConnectionLog) -> None:
    record = log.requests[-1]
    record.status, record.output_tokens = turn.status, turn.output_tokens
    record.charged_ms = turn.charged_ms + sim.config.costs.http_request_ms
    record.done_ms = log.now_ms()
    if turn.record is None:
        return
    if turn.request.store:
        sim.store.put(turn.record)
    entry = OracleEntry(
        turn.id, log.id, turn.context_hash, len(turn.resolved.context), record.mode, record.cache
    )
    sim.introspection.record(entry)


async def _retrieve(sim: Host, response_id: str, send: Send) -> None:
    stored = sim.store.get(response_id)
    if stored is None:
        error = RequestError(404, None, f"Response with id '{response_id}' not found.", None)
        await send_json(send, 404, error.http_body())
        return
    await send_json(send, 200, stored.body)


async def _introspect(sim: Host, path: str, method: str, receive: Receive, send: Send) -> None:

    parts = path.strip("/").split("/")
    connections = sim.introspection.connections
    if parts == ["status"]:
        await send_json(send, 200, describe(sim))
    elif parts == ["connections"]:
        await send_json(send, 200, {"data": [c.summary() for c in connections.values()]})
    elif len(parts) == 2 and parts[0] == "connections" and parts[1] in connections:
        await send_json(send, 200, connections[parts[1]].as_dict())
    elif len(parts) == 2 and parts[0] == "responses" and parts[1] in sim.introspection.oracle:
        await send_json(send, 200, asdict(sim.introspection.oracle[parts[1]]))
    elif parts == ["faults"] and method in ("POST", "DELETE"):
        await _set_faults(sim, method, receive, send)
    else:
        await _not_found(send, f"Nothing at /_sim/{path}.")


async def _set_faults(sim: Host, method: str, receive: Receive, send: Send) -> None:
    """``POST {"next": SPEC}`` or ``{"always": SPEC}`` sets faults; ``DELETE`` clears them."""
    if method == "DELETE":
        sim.faults.clear()
        await send_json(send, 200, {"cleared": True})
        return
    try:
        body = json.loads(await read_body(receive, 64 * 1024) or b"{}")
        if "always" in body:
            sim.faults.always(str(body["always"]))
        if "next" in body:
            sim.faults.next(str(body["next"]))
    except (ValueError, BodyTooLarge, FaultSpecError, TypeError) as exc:
        await _error(send, RequestError.invalid("faults", str(exc)))
        return
    await send_json(send, 200, {"ok": True})


async def _not_found(send: Send, message: str) -> None:
    await send_json(send, 404, RequestError(404, None, message, None).http_body())


async def _error(send: Send, error: RequestError) -> None:
    await send_json(send, error.status, error.http_body(), error.headers)
