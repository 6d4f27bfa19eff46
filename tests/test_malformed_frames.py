"""Malformed client frames and bad requests get an ``error`` event; the socket stays open.

Every case sends something wrong, checks the error envelope of the WebSocket protocol
(``{"type":"error","status":…,"error":{"type","code","message","param"}}``), then proves the
connection still works by completing a normal ``response.create`` on the same socket.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from websockets.asyncio.client import ClientConnection, connect

from simulator import Simulator
from tests.simserver import SimServer

AUTH = [(b"authorization", b"Bearer k")]
TERMINAL = {"response.completed", "response.failed", "response.incomplete", "error"}
TWENTY_MIB = 20 * 1024 * 1024
LOOKUP_TOOL = {
    "type": "function",
    "name": "lookup",
    "strict": False,
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
}


@pytest.fixture
async def ws(simulator: Simulator) -> AsyncIterator[WebsocketCommunicator]:
    communicator = WebsocketCommunicator(simulator, "/v1/responses", headers=AUTH)
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    yield communicator
    await communicator.disconnect()


def create(**fields: Any) -> dict[str, Any]:
    return {"type": "response.create", "model": "sim-model", "input": "hello there", **fields}


async def turn(ws: WebsocketCommunicator, **fields: Any) -> list[dict[str, Any]]:
    """Send one response.create and read its events up to the terminal event or an error."""
    await ws.send_json_to(create(**fields))
    events = [await ws.receive_json_from(timeout=5)]
    while events[-1]["type"] not in TERMINAL:
        events.append(await ws.receive_json_from(timeout=5))
    return events


async def assert_still_serves(ws: WebsocketCommunicator) -> None:
    assert not ws.future.done(), "the connection handler ended"
    events = await turn(ws)
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "response.completed"


def assert_error(
    event: dict[str, Any], code: str | None, param: str | None, status: int = 400
) -> str:
    """Check the exact nested WS error envelope; returns the message."""
    assert set(event) == {"type", "status", "error"}, event
    assert event["type"] == "error"
    assert event["status"] == status
    error = event["error"]
    assert set(error) == {"type", "code", "message", "param"}, error
    assert error["type"] == "invalid_request_error"
    assert error["code"] == code
    assert error["param"] == param
    assert isinstance(error["message"], str)
    assert error["message"]
    return str(error["message"])


# -- frames that are not events ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code", "param"),
    [
        pytest.param("{not json", "invalid_json", None, id="not-json"),
        pytest.param('{"type": "response.create"', "invalid_json", None, id="truncated-json"),
        pytest.param("[1, 2, 3]", "invalid_event", "type", id="list"),
        pytest.param("42", "invalid_event", "type", id="number"),
        pytest.param('"response.create"', "invalid_event", "type", id="string"),
        pytest.param("null", "invalid_event", "type", id="null"),
        pytest.param('{"model": "sim-model"}', "invalid_event", "type", id="no-type"),
        pytest.param('{"type": 7}', "invalid_event", "type", id="non-string-type"),
        pytest.param('{"type": "response.cancel"}', "unknown_event_type", "type", id="unknown"),
        pytest.param('{"type": "response.create"}', "missing_required_parameter", "model", id="nm"),
    ],
)
async def test_a_malformed_text_frame_gets_an_error_and_the_socket_stays_open(
    ws: WebsocketCommunicator, frame: str, code: str, param: str | None
) -> None:
    await ws.send_to(text_data=frame)
    assert_error(await ws.receive_json_from(timeout=5), code, param)
    await assert_still_serves(ws)


async def test_an_empty_text_frame_is_not_json(ws: WebsocketCommunicator) -> None:
    await ws.send_input({"type": "websocket.receive", "text": ""})
    assert_error(await ws.receive_json_from(timeout=5), "invalid_json", None)
    await assert_still_serves(ws)


async def test_an_unknown_event_type_is_named_in_the_error(ws: WebsocketCommunicator) -> None:
    await ws.send_json_to({"type": "session.update"})
    message = assert_error(await ws.receive_json_from(timeout=5), "unknown_event_type", "type")
    assert "session.update" in message
    await assert_still_serves(ws)


async def test_a_binary_frame_gets_an_error_and_the_socket_stays_open(
    ws: WebsocketCommunicator,
) -> None:
    await ws.send_to(bytes_data=json.dumps(create()).encode())
    message = assert_error(await ws.receive_json_from(timeout=5), "invalid_event", None)
    assert "Binary" in message
    await assert_still_serves(ws)


async def test_a_twenty_mib_frame_is_too_large_and_the_socket_stays_open(
    ws: WebsocketCommunicator,
) -> None:
    await ws.send_json_to(create(input="x" * TWENTY_MIB))
    message = assert_error(await ws.receive_json_from(timeout=10), "frame_too_large", None, 413)
    assert str(16 * 1024 * 1024) in message
    await assert_still_serves(ws)


async def test_several_bad_frames_in_a_row_each_get_one_error(ws: WebsocketCommunicator) -> None:
    for frame in ("nope", "[]", '{"type": "x"}'):
        await ws.send_to(text_data=frame)
    codes = [(await ws.receive_json_from(timeout=5))["error"]["code"] for _ in range(3)]
    assert codes == ["invalid_json", "invalid_event", "unknown_event_type"]
    assert await ws.receive_nothing(timeout=0.1)
    await assert_still_serves(ws)


# -- bad requests ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "code", "param"),
    [
        pytest.param({"input": 42}, None, "input", id="input-number"),
        pytest.param({"input": {"role": "user"}}, None, "input", id="input-object"),
        pytest.param({"input": [42]}, None, "input[0]", id="input-item-number"),
        pytest.param(
            {"input": [{"role": "robot", "content": "hi"}]}, None, "input[0].role", id="role"
        ),
        pytest.param(
            {"input": [{"type": "function_call_output"}]}, None, "input[0].call_id", id="fco"
        ),
        pytest.param(
            {"tools": [{"type": "function"}]},
            "missing_required_parameter",
            "tools[0].name",
            id="tool-without-name",
        ),
        pytest.param({"tools": "lookup"}, None, "tools", id="tools-string"),
        pytest.param({"tools": [7]}, None, "tools[0]", id="tool-number"),
        pytest.param({"max_output_tokens": 3}, None, "max_output_tokens", id="max-tokens-3"),
        pytest.param({"max_output_tokens": "many"}, None, "max_output_tokens", id="max-tokens-str"),
        pytest.param({"store": "yes"}, None, "store", id="store-string"),
        pytest.param({"instructions": 5}, None, "instructions", id="instructions-number"),
        pytest.param({"tool_choice": "sometimes"}, None, "tool_choice", id="tool-choice"),
        pytest.param({"metadata": "x"}, None, "metadata", id="metadata-string"),
        pytest.param({"background": True}, None, "background", id="background"),
        pytest.param({"previous_response_id": 7}, None, "previous_response_id", id="prev-number"),
        pytest.param({"stream_id": ""}, "invalid_stream_id", "stream_id", id="empty-stream-id"),
        pytest.param({"stream_id": "a b"}, "invalid_stream_id", "stream_id", id="bad-stream-id"),
        pytest.param({"model": ""}, "missing_required_parameter", "model", id="empty-model"),
    ],
)
async def test_bad_input_gets_a_400_and_never_crashes_the_handler(
    ws: WebsocketCommunicator, fields: dict[str, Any], code: str | None, param: str
) -> None:
    events = await turn(ws, **fields)
    assert len(events) == 1
    assert_error(events[0], code, param)
    await assert_still_serves(ws)


async def test_an_unknown_previous_response_is_not_found(ws: WebsocketCommunicator) -> None:
    events = await turn(ws, previous_response_id="resp_missing", store=False)
    message = assert_error(events[-1], "previous_response_not_found", "previous_response_id")
    assert "resp_missing" in message
    await assert_still_serves(ws)


async def test_a_tool_output_for_an_unknown_call_id_is_rejected(ws: WebsocketCommunicator) -> None:
    output = {"type": "function_call_output", "call_id": "call_nope", "output": "42"}
    events = await turn(ws, input=[output])
    message = assert_error(events[-1], None, "input")
    assert message.startswith("No tool call found")
    assert "call_nope" in message
    await assert_still_serves(ws)


async def test_a_continuation_that_leaves_a_call_unanswered_is_rejected(
    ws: WebsocketCommunicator,
) -> None:
    first = await turn(ws, input="look up the weather", tools=[LOOKUP_TOOL])
    assert first[-1]["type"] == "response.completed"
    (call,) = first[-1]["response"]["output"]
    assert call["type"] == "function_call"
    events = await turn(
        ws,
        previous_response_id=first[-1]["response"]["id"],
        input="never mind",
        tools=[LOOKUP_TOOL],
    )
    message = assert_error(events[-1], None, "input")
    assert message.startswith("No tool output found")
    assert call["call_id"] in message
    await assert_still_serves(ws)


async def test_the_log_records_each_bad_frame_by_kind(
    ws: WebsocketCommunicator, simulator: Simulator
) -> None:
    for frame in ("nope", "[]"):
        await ws.send_to(text_data=frame)
        await ws.receive_json_from(timeout=5)
    await ws.send_to(bytes_data=b"\x00")
    await ws.receive_json_from(timeout=5)
    (log,) = simulator.introspection.connections.values()
    assert [f["type"] for f in log.frames] == ["invalid_json", "invalid_event", "binary"]
    assert not log.closed


# -- the same over a real socket ---------------------------------------------------------------


def real_socket(server: SimServer) -> Any:
    return connect(server.ws_url, additional_headers={"Authorization": "Bearer k"}, max_size=None)


async def real_turn(sock: ClientConnection) -> list[dict[str, Any]]:
    await sock.send(json.dumps(create()))
    events = [json.loads(await asyncio.wait_for(sock.recv(), 5))]
    while events[-1]["type"] not in TERMINAL:
        events.append(json.loads(await asyncio.wait_for(sock.recv(), 5)))
    return events


async def test_the_real_server_answers_a_twenty_mib_frame_and_keeps_the_socket(
    sim_server: SimServer,
) -> None:
    async with real_socket(sim_server) as sock:
        await sock.send(json.dumps(create(input="x" * TWENTY_MIB)))
        event = json.loads(await asyncio.wait_for(sock.recv(), 30))
        assert_error(event, "frame_too_large", None, 413)
        assert (await real_turn(sock))[-1]["type"] == "response.completed"


async def test_the_real_server_answers_a_non_json_frame_and_keeps_the_socket(
    sim_server: SimServer,
) -> None:
    async with real_socket(sim_server) as sock:
        await sock.send("this is not json")
        assert_error(json.loads(await asyncio.wait_for(sock.recv(), 5)), "invalid_json", None)
        assert (await real_turn(sock))[-1]["type"] == "response.completed"
