"""Every fault of ``simulator.faults``, observed from the client's side of the wire."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import openai
import pytest
from channels.testing import HttpCommunicator, WebsocketCommunicator
from openai import OpenAI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidStatus,
)

from simulator import FaultPlan, Simulator, SimulatorConfig
from simulator.errors import KNOWN_CODES, MESSAGES
from simulator.faults import SHAPES, UPGRADE_STATUSES, EventFault, FaultSpecError, parse
from tests.simserver import SimServer

AUTH = [(b"authorization", b"Bearer k")]
TERMINAL = {"response.completed", "response.failed", "response.incomplete", "error"}
CREATE = {"type": "response.create", "model": "sim-model", "input": "hello there", "store": False}
UPGRADE_CASES = [*((status, None) for status in UPGRADE_STATUSES), (429, "2")]


@asynccontextmanager
async def socket(app: Simulator, faults: str = "") -> AsyncIterator[WebsocketCommunicator]:
    path = "/v1/responses" + (f"?sim_faults={quote(faults)}" if faults else "")
    ws = WebsocketCommunicator(app, path, headers=AUTH)
    connected, _ = await ws.connect(timeout=5)
    assert connected
    try:
        yield ws
    finally:
        await ws.disconnect()


async def read_response(ws: WebsocketCommunicator) -> list[dict[str, Any]]:
    """Events up to the terminal event or an error."""
    events = [await ws.receive_json_from(timeout=5)]
    while events[-1]["type"] not in TERMINAL:
        events.append(await ws.receive_json_from(timeout=5))
    return events


async def turn(ws: WebsocketCommunicator, **fields: Any) -> list[dict[str, Any]]:
    await ws.send_json_to({**CREATE, **fields})
    return await read_response(ws)


@pytest.fixture
def sdk(sim_server: SimServer) -> Iterator[OpenAI]:
    with OpenAI(api_key="k", base_url=sim_server.base_url, max_retries=0) as client:
        yield client


def real_socket(server: SimServer, faults: str = "") -> Any:
    url = server.ws_url + (f"?sim_faults={quote(faults)}" if faults else "")
    headers = {"Authorization": f"Bearer {server.api_key}"}
    return connect(url, additional_headers=headers, max_size=None, open_timeout=5)


async def real_turn(sock: ClientConnection) -> list[dict[str, Any]]:
    await sock.send(json.dumps(CREATE))
    events = [json.loads(await asyncio.wait_for(sock.recv(), 5))]
    while events[-1]["type"] not in TERMINAL:
        events.append(json.loads(await asyncio.wait_for(sock.recv(), 5)))
    return events


async def read_until_closed(
    sock: ClientConnection,
) -> tuple[list[dict[str, Any]], ConnectionClosed]:
    events: list[dict[str, Any]] = []
    while True:
        try:
            events.append(json.loads(await asyncio.wait_for(sock.recv(), 5)))
        except ConnectionClosed as closed:
            return events, closed


# -- the spec parser -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "plan"),
    [
        ("", FaultPlan()),
        ("upgrade_status=429:2", FaultPlan(upgrade_status=429, retry_after_s=2)),
        ("max_age_s=1.5", FaultPlan(max_age_s=1.5)),
        ("close_after_events=3:4001", FaultPlan(close_after_events=EventFault(3, None, 4001))),
        ("drop_after_events=2@3", FaultPlan(drop_after_events=EventFault(2, 3))),
        ("stall_after_events=5:250", FaultPlan(stall_after_events=EventFault(5, None, 250))),
        ("close_after_recv=2", FaultPlan(close_after_recv=2)),
        ("error_frame=2:server_error", FaultPlan(error_frames={2: ("server_error", "nested")})),
        ("error_frame=1:x:flat", FaultPlan(error_frames={1: ("x", "flat")})),
        ("response_failed=3:server_error", FaultPlan(response_failed={3: "server_error"})),
        ("forget_cache_before=2; forget_cache_before=4", FaultPlan(forget_cache_before={2, 4})),
        ("connection_limit_at=5", FaultPlan(connection_limit_at=5)),
        ("oversize_frame=1:4096", FaultPlan(oversize_frames={1: 4096})),
        ("garbage_frame=1;binary_frame=2", FaultPlan(garbage_frames={1}, binary_frames={2})),
        ("error_rate=0.25:server_error", FaultPlan(error_rate=(0.25, "server_error"))),
        (" close_after_recv = 1 ;; ", FaultPlan(close_after_recv=1)),
    ],
)
def test_a_good_spec_parses_into_its_plan(spec: str, plan: FaultPlan) -> None:
    assert parse(spec) == plan


@pytest.mark.parametrize(
    "spec",
    [
        "explode=1",
        "close_after_events",
        "close_after_recv=1;boom=2",
        "upgrade_status=418",
        "close_after_events=many",
        "error_frame=1",
        "error_frame=1:server_error:sideways",
        "error_rate=2:server_error",
        "oversize_frame=1:2:3",
        "garbage_frame=first",
    ],
)
def test_a_bad_spec_raises_an_error_naming_the_bad_part(spec: str) -> None:
    with pytest.raises(FaultSpecError) as raised:
        parse(spec)
    assert f"'{spec.split(';')[-1]}'" in str(raised.value)


async def test_a_bad_spec_in_the_query_refuses_the_upgrade_with_400(sim_server: SimServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with real_socket(sim_server, "explode=1"):
            pass
    assert refused.value.response.status_code == 400
    error = json.loads(refused.value.response.body)["error"]
    assert error["param"] == "sim_faults"
    assert "'explode=1'" in error["message"]


async def test_a_bad_spec_in_the_header_answers_400_over_http(simulator: Simulator) -> None:
    response = await http_post(simulator, "bogus=1")
    assert response["status"] == 400
    error = json.loads(response["body"])["error"]
    assert error["param"] == "sim_faults"
    assert "'bogus=1'" in error["message"]


# -- upgrade and connection faults on the real server ---------------------------------------------


@pytest.mark.parametrize(("status", "retry_after"), UPGRADE_CASES)
async def test_an_upgrade_fault_refuses_the_handshake_with_that_status(
    sim_server: SimServer, status: int, retry_after: str | None
) -> None:
    spec = f"upgrade_status={status}" + (f":{retry_after}" if retry_after else "")
    with pytest.raises(InvalidStatus) as refused:
        async with real_socket(sim_server, spec):
            pass
    response = refused.value.response
    assert response.status_code == status
    assert response.headers.get("retry-after") == retry_after
    assert json.loads(response.body)["error"]["code"] == f"simulated_{status}"


def test_the_sdk_surfaces_an_upgrade_fault_as_invalid_status(sdk: OpenAI) -> None:
    manager = sdk.responses.connect(extra_query={"sim_faults": "upgrade_status=426"})
    with pytest.raises(InvalidStatus) as refused, manager:
        pass
    assert refused.value.response.status_code == 426


@pytest.mark.parametrize(
    ("spec", "events", "close_code", "kind"),
    [
        ("close_after_events=3", 3, 1000, ConnectionClosedOK),
        ("close_after_events=2:4001", 2, 4001, ConnectionClosedError),
        ("drop_after_events=4", 4, 1006, ConnectionClosedError),  # 1006: no close frame
    ],
)
async def test_close_and_drop_after_events_end_the_socket_after_exactly_n_events(
    sim_server: SimServer, spec: str, events: int, close_code: int, kind: type[Exception]
) -> None:
    async with real_socket(sim_server, spec) as sock:
        await sock.send(json.dumps(CREATE))
        received, closed = await read_until_closed(sock)
        assert sock.close_code == close_code
    assert len(received) == events
    assert type(closed) is kind
    assert (closed.rcvd.code if closed.rcvd else 1006) == close_code


async def test_close_after_recv_drops_the_socket_once_the_kth_create_arrives(
    sim_server: SimServer,
) -> None:
    async with real_socket(sim_server, "close_after_recv=2") as sock:
        assert (await real_turn(sock))[-1]["type"] == "response.completed"
        await sock.send(json.dumps(CREATE))
        received, closed = await read_until_closed(sock)
    assert received == []
    assert isinstance(closed, ConnectionClosedError)
    assert closed.rcvd is None


def test_oversize_frame_pads_the_terminal_frame_beyond_the_size(sdk: OpenAI) -> None:
    size = 2_000_000  # twice websockets' default max_size; the SDK lifts the limit
    with sdk.responses.connect(extra_query={"sim_faults": f"oversize_frame=1:{size}"}) as conn:
        conn.response.create(model="sim-model", input="hello", store=False)
        frames = [conn.recv_bytes()]
        while json.loads(frames[-1])["type"] not in TERMINAL:
            frames.append(conn.recv_bytes())
    assert json.loads(frames[-1])["type"] == "response.completed"
    assert len(frames[-1]) > size
    assert all(len(frame) < size for frame in frames[:-1])


# -- stalls (time-based) -----------------------------------------------------------------------


async def test_a_timed_stall_pauses_the_stream_then_it_continues(simulator: Simulator) -> None:
    async with socket(simulator, "stall_after_events=2:300") as ws:
        await ws.send_json_to(CREATE)
        first = [await ws.receive_json_from(timeout=5) for _ in range(2)]
        stalled_at = time.monotonic()
        assert await ws.receive_nothing(timeout=0.15)
        rest = await read_response(ws)
        waited = time.monotonic() - stalled_at
    assert [e["type"] for e in first] == ["response.created", "response.in_progress"]
    assert waited >= 0.25  # the server paused 0.3 s just before ``stalled_at``
    assert rest[-1]["type"] == "response.completed"


async def test_a_stall_without_a_duration_never_resumes_while_the_socket_is_open(
    simulator: Simulator,
) -> None:
    async with socket(simulator, "stall_after_events=2") as ws:
        await ws.send_json_to(CREATE)
        for _ in range(2):
            await ws.receive_json_from(timeout=5)
        assert await ws.receive_nothing(timeout=0.5)
        assert not ws.future.done()


# -- request-scoped faults, in process ---------------------------------------------------------


def expected_error(code: str, shape: str) -> dict[str, Any]:
    status, kind, param = KNOWN_CODES[code]
    message = MESSAGES.get(code, f"Simulated error: {code}.")
    if shape == "flat":
        return {"type": "error", "status": status, "code": code, "message": message, "param": param}
    error: dict[str, Any] = {"type": kind, "code": code, "message": message, "param": param}
    if code == "rate_limit_exceeded":  # the only retryable one carries a retry hint
        error["headers"] = {"retry-after-ms": "1500"}
    event = {"type": "error", "error": error}
    return event if shape == "no-status" else {**event, "status": status}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("code", KNOWN_CODES)
async def test_error_frame_sends_that_code_in_that_shape(
    simulator: Simulator, code: str, shape: str
) -> None:
    async with socket(simulator, f"error_frame=1:{code}:{shape}") as ws:
        assert await turn(ws) == [expected_error(code, shape)]
        assert (await turn(ws))[-1]["type"] == "response.completed"


def test_an_injected_invalid_api_key_looks_like_the_simulators_own_401() -> None:
    sim = Simulator(SimulatorConfig(api_keys=frozenset({"good"})))
    refusal = sim.authorize({"headers": [(b"authorization", b"Bearer bad")]})
    assert refusal is not None
    status, kind, _ = KNOWN_CODES["invalid_api_key"]
    assert (refusal.status, refusal.type, refusal.code) == (status, kind, "invalid_api_key")


async def test_error_frame_hits_only_request_k_and_unknown_codes_are_500(
    simulator: Simulator,
) -> None:
    async with socket(simulator, "error_frame=2:made_up") as ws:
        assert (await turn(ws))[-1]["type"] == "response.completed"
        (error,) = await turn(ws)
        assert (await turn(ws))[-1]["type"] == "response.completed"
    assert error["status"] == 500
    assert error["error"]["code"] == "made_up"
    assert error["error"]["type"] == "server_error"


@pytest.mark.parametrize("code", ["rate_limit_exceeded", "server_error", "context_length_exceeded"])
async def test_response_failed_ends_the_response_with_that_code(
    simulator: Simulator, code: str
) -> None:
    async with socket(simulator, f"response_failed=1:{code}") as ws:
        events = await turn(ws)
        assert (await turn(ws))[-1]["type"] == "response.completed"
    types = [e["type"] for e in events]
    assert types == ["response.created", "response.in_progress", "response.failed"]
    response = events[-1]["response"]
    assert response["status"] == "failed"
    assert response["error"]["code"] == code


async def test_forget_cache_before_turns_a_would_be_hit_into_not_found(
    simulator: Simulator,
) -> None:
    async with socket(simulator, "forget_cache_before=3") as ws:
        first = (await turn(ws))[-1]["response"]["id"]
        hit = (await turn(ws, previous_response_id=first, input="and then?"))[-1]
        parent = hit["response"]["id"]
        events = await turn(ws, previous_response_id=parent, input="and then?")
        assert (await turn(ws))[-1]["type"] == "response.completed"
    assert hit["response"]["usage"]["input_tokens_details"]["cached_tokens"] > 0
    message = f"Previous response with id '{parent}' not found."
    error = {"type": "invalid_request_error", "code": "previous_response_not_found"}
    error |= {"message": message, "param": "previous_response_id"}
    assert events == [{"type": "error", "status": 400, "error": error}]


async def test_forget_cache_before_makes_a_store_true_continuation_hydrate(
    simulator: Simulator,
) -> None:
    async with socket(simulator, "forget_cache_before=2") as ws:
        parent = (await turn(ws, store=True))[-1]["response"]["id"]
        events = await turn(ws, store=True, previous_response_id=parent, input="and then?")
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["usage"]["input_tokens_details"]["cached_tokens"] == 0
    (log,) = simulator.introspection.connections.values()
    assert [r.cache for r in log.requests] == ["none", "hydrated"]


async def test_connection_limit_at_sends_the_limit_error_then_closes(simulator: Simulator) -> None:
    async with socket(simulator, "connection_limit_at=2") as ws:
        assert (await turn(ws))[-1]["type"] == "response.completed"
        (error,) = await turn(ws, stream_id="main")
        assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 1000}
    assert set(error) == {"type", "status", "error"}  # no stream_id: connection-scoped
    assert error["status"] == 400
    assert error["error"]["code"] == "websocket_connection_limit_reached"
    assert error["error"]["param"] is None


async def test_max_age_s_ages_an_idle_socket_out_with_the_limit_error(
    simulator: Simulator,
) -> None:
    async with socket(simulator, "max_age_s=0.3") as ws:
        assert (await turn(ws))[-1]["type"] == "response.completed"
        error = await ws.receive_json_from(timeout=5)  # time-based: the age limit fires
        assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 1000}
    assert error["error"]["code"] == "websocket_connection_limit_reached"
    assert "0.3 seconds" in error["error"]["message"]


@pytest.mark.parametrize(
    ("spec", "junk"), [("garbage_frame=2", "}{ not json"), ("binary_frame=2", b"\x00\xffbinary")]
)
async def test_a_junk_frame_comes_before_the_kth_responses_events(
    simulator: Simulator, spec: str, junk: str | bytes
) -> None:
    async with socket(simulator, spec) as ws:
        assert (await turn(ws))[0]["type"] == "response.created"
        await ws.send_json_to(CREATE)
        assert await ws.receive_from(timeout=5) == junk
        rest = await read_response(ws)
    assert rest[0]["type"] == "response.created"
    assert rest[-1]["type"] == "response.completed"


async def error_pattern(seed: int, spec: str, connections: int = 3, creates: int = 8) -> str:
    """'x' for each create the fault failed, '.' for each that completed, one row per socket."""
    sim = Simulator(SimulatorConfig(seed=seed))
    sim.faults.always(spec)
    rows = []
    for _ in range(connections):
        async with socket(sim) as ws:
            row = ""
            for _ in range(creates):
                row += "x" if (await turn(ws))[-1]["type"] == "error" else "."
            rows.append(row)
    return "/".join(rows)


async def test_error_rate_is_seeded_by_the_simulator_seed_and_connection_order() -> None:
    first = await error_pattern(11, "error_rate=0.5:server_error")
    assert await error_pattern(11, "error_rate=0.5:server_error") == first
    assert "x" in first
    assert "." in first
    assert await error_pattern(12, "error_rate=0.5:server_error") != first


# -- in-process fault control --------------------------------------------------------------------


async def first_turn_ends_with(sim: Simulator) -> str:
    async with socket(sim) as ws:
        return str((await turn(ws))[-1]["type"])


async def test_a_next_fault_applies_to_the_next_connection_only(simulator: Simulator) -> None:
    simulator.faults.next("error_frame=1:server_error")
    simulator.faults.next(FaultPlan(response_failed={1: "server_error"}))
    outcomes = [await first_turn_ends_with(simulator) for _ in range(3)]
    assert outcomes == ["error", "response.failed", "response.completed"]


async def test_an_always_fault_applies_until_cleared(simulator: Simulator) -> None:
    simulator.faults.always("error_frame=1:server_error")
    outcomes = [await first_turn_ends_with(simulator) for _ in range(2)]
    simulator.faults.clear()
    outcomes.append(await first_turn_ends_with(simulator))
    assert outcomes == ["error", "error", "response.completed"]


async def test_in_process_and_query_faults_combine(simulator: Simulator) -> None:
    simulator.faults.next("error_frame=2:server_error")
    async with socket(simulator, "response_failed=1:server_error") as ws:
        outcomes = [(await turn(ws))[-1]["type"] for _ in range(3)]
    assert outcomes == ["response.failed", "error", "response.completed"]


# -- HTTP faults -------------------------------------------------------------------------------


async def http_post(sim: Simulator, faults: str) -> Any:
    body = json.dumps({"model": "sim-model", "input": "hello", "stream": True}).encode()
    headers = [*AUTH, (b"content-type", b"application/json"), (b"x-sim-faults", faults.encode())]
    communicator = HttpCommunicator(sim, "POST", "/v1/responses", body=body, headers=headers)
    return await communicator.get_response(timeout=5)


@pytest.mark.parametrize(("status", "retry_after"), UPGRADE_CASES)
async def test_upgrade_status_over_http_answers_that_status_with_a_json_error(
    simulator: Simulator, status: int, retry_after: str | None
) -> None:
    spec = f"upgrade_status={status}" + (f":{retry_after}" if retry_after else "")
    response = await http_post(simulator, spec)
    headers = dict(response["headers"])
    assert response["status"] == status
    assert headers[b"content-type"] == b"application/json"
    assert headers.get(b"retry-after") == (retry_after.encode() if retry_after else None)
    error = json.loads(response["body"])["error"]
    assert set(error) >= {"type", "code", "message", "param"}
    assert error["code"] == f"simulated_{status}"


def read_sse(sdk: OpenAI, faults: str, types: list[str]) -> None:
    headers = {"X-Sim-Faults": faults}
    with sdk.responses.create(
        model="sim-model", input="hello", stream=True, extra_headers=headers
    ) as stream:
        types.extend(event.type for event in stream)


FIRST_THREE = ["response.created", "response.in_progress", "response.output_item.added"]


def test_close_after_events_ends_an_sse_stream_cleanly_after_n_events(sdk: OpenAI) -> None:
    types: list[str] = []
    read_sse(sdk, "close_after_events=3", types)
    assert types == FIRST_THREE


def test_drop_after_events_aborts_an_sse_stream_after_n_events(sdk: OpenAI) -> None:
    types: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        read_sse(sdk, "drop_after_events=3", types)
    assert types == FIRST_THREE


def test_a_merged_upgrade_status_keeps_its_own_retry_hint() -> None:
    merged = parse("upgrade_status=429:5").merge(parse("upgrade_status=503"))
    assert (merged.upgrade_status, merged.retry_after_s) == (503, None)
    kept = parse("upgrade_status=429:5").merge(parse("drop_after_events=3"))
    assert (kept.upgrade_status, kept.retry_after_s) == (429, 5)
