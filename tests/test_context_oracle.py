"""The context oracle proves the client's transcript equals the context the upstream rebuilt."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from openai import AsyncOpenAI
from openai.resources.responses.responses import AsyncResponsesConnection

from simulator import context_hash
from tests.simserver import SimServer

Item = dict[str, Any]
Body = dict[str, Any]
RECV_TIMEOUT = 10
STEPS = 20
PROMPT = f"/research {STEPS} tide tables of the Atlantic coast"
TOOL = {
    "type": "function",
    "name": "search_notes",
    "description": "Search the research notes.",
    "parameters": {
        "type": "object",
        "properties": {"query": {"type": "string"}, "page": {"type": "integer", "minimum": 1}},
        "required": ["query", "page"],
        "additionalProperties": False,
    },
    "strict": True,
}
TERMINAL = {"response.completed", "response.incomplete", "response.failed"}
# A turn: (full transcript so far, the items new since the last response, that response's id).
Turn = Callable[[list[Item], list[Item], str | None], Awaitable[Body]]


class UpstreamError(Exception):
    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__(json.dumps(event))
        self.code = event["error"]["code"]


@dataclass(frozen=True)
class Step:
    response_id: str
    expected_hash: str  # context_hash of the client's transcript when it sent the request


def user(text: str) -> Item:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def tool_output(call: Item, step: int) -> Item:
    text = f"Note {step}: high tide at {step % 12 + 1}:05, {call['call_id'][-6:]}."
    return {"type": "function_call_output", "call_id": call["call_id"], "output": text}


async def research(turn: Turn) -> list[Step]:
    """Run the research task, answering every call; one Step per response."""
    transcript, new, previous = [user(PROMPT)], [user(PROMPT)], None
    steps: list[Step] = []
    while len(steps) <= STEPS + 1:
        expected = context_hash(transcript)
        body = await turn(list(transcript), list(new), previous)
        steps.append(Step(body["id"], expected))
        transcript += body["output"]
        new = [tool_output(i, len(steps)) for i in body["output"] if i["type"] == "function_call"]
        if not new:
            return steps
        transcript += new
        previous = body["id"]
    raise AssertionError("the research task did not end")


@asynccontextmanager
async def socket(server: SimServer, faults: str = "") -> AsyncIterator[AsyncResponsesConnection]:
    client = AsyncOpenAI(api_key=server.api_key, base_url=server.base_url, max_retries=0)
    query = {"sim_faults": faults} if faults else {}
    async with client, client.responses.connect(extra_query=query) as conn:
        yield conn


async def ws_create(conn: AsyncResponsesConnection, **fields: Any) -> Body:
    await conn.response.create(model="sim", tools=[TOOL], **fields)  # type: ignore[list-item]
    while True:
        event = json.loads(await asyncio.wait_for(conn.recv_bytes(), RECV_TIMEOUT))
        if event["type"] == "error":
            raise UpstreamError(event)
        if event["type"] in TERMINAL:
            assert event["type"] == "response.completed", event
            return event["response"]  # type: ignore[no-any-return]


def delta_turn(conn: AsyncResponsesConnection, store: bool = True) -> Turn:
    async def turn(transcript: list[Item], new: list[Item], previous: str | None) -> Body:
        try:
            return await ws_create(conn, input=new, previous_response_id=previous, store=store)
        except UpstreamError as exc:
            if exc.code != "previous_response_not_found":
                raise
            return await ws_create(conn, input=transcript, store=store)  # one full resend

    return turn


def full_turn(conn: AsyncResponsesConnection) -> Turn:
    async def turn(transcript: list[Item], new: list[Item], previous: str | None) -> Body:
        return await ws_create(conn, input=transcript, store=False)

    return turn


def assert_oracle_agrees(server: SimServer, steps: list[Step]) -> list[dict[str, Any]]:
    assert len(steps) == STEPS + 1
    entries = [server.oracle(step.response_id) for step in steps]
    assert [e["context_hash"] for e in entries] == [s.expected_hash for s in steps]
    return entries


def log_of(server: SimServer, entry: dict[str, Any]) -> list[dict[str, Any]]:
    return server.connection(entry["connection_id"])["log"]  # type: ignore[no-any-return]


async def test_the_delta_path_matches_the_oracle_on_every_step_with_all_cache_hits(
    sim_server: SimServer,
) -> None:
    async with socket(sim_server) as conn:
        steps = await research(delta_turn(conn))
    entries = assert_oracle_agrees(sim_server, steps)
    assert {e["connection_id"] for e in entries} == {entries[0]["connection_id"]}
    assert [e["mode"] for e in entries] == ["create"] + ["delta"] * STEPS
    log = log_of(sim_server, entries[0])
    assert len(log) == STEPS + 1
    assert [r["cache"] for r in log].count("hit") == STEPS
    assert [r["response_id"] for r in log] == [s.response_id for s in steps]
    assert all(r["status"] == "completed" for r in log)
    assert [r["context_items"] for r in log] == [e["context_items"] for e in entries]


async def test_the_full_resend_path_matches_the_oracle_on_every_step(
    sim_server: SimServer,
) -> None:
    async with socket(sim_server) as conn:
        steps = await research(full_turn(conn))
    entries = assert_oracle_agrees(sim_server, steps)
    assert {e["mode"] for e in entries} == {"create"}
    assert {r["cache"] for r in log_of(sim_server, entries[0])} == {"none"}


async def test_a_forced_cache_miss_then_one_full_resend_keeps_the_oracle_equal(
    sim_server: SimServer,
) -> None:
    async with socket(sim_server, faults="forget_cache_before=8") as conn:
        steps = await research(delta_turn(conn, store=False))
    entries = assert_oracle_agrees(sim_server, steps)
    log = log_of(sim_server, entries[0])
    assert len(log) == STEPS + 2  # the failed continuation and its one full resend
    assert log[7]["status"] == "error:previous_response_not_found"
    assert log[8]["mode"] == "create"
    assert [r["cache"] for r in log].count("hit") == STEPS - 1
    assert [e["mode"] for e in entries][6:9] == ["delta", "create", "delta"]


async def test_http_with_the_full_context_gives_the_same_hashes_as_the_websocket_deltas(
    sim_server: SimServer,
) -> None:
    client = AsyncOpenAI(api_key=sim_server.api_key, base_url=sim_server.base_url, max_retries=0)

    async def http_turn(transcript: list[Item], new: list[Item], previous: str | None) -> Body:
        fields: dict[str, Any] = {"input": transcript, "tools": [TOOL], "timeout": 10}
        stream = await client.responses.create(model="sim", store=False, stream=True, **fields)
        async with stream:
            events = [event async for event in stream]
        assert events[-1].type == "response.completed"
        body: Body = events[-1].response.model_dump(mode="json", exclude_none=True)
        return body

    async with client:
        over_http = await research(http_turn)
    async with socket(sim_server) as conn:
        over_ws = await research(delta_turn(conn))
    assert [s.expected_hash for s in over_http] == [s.expected_hash for s in over_ws]
    entries = assert_oracle_agrees(sim_server, over_http)
    assert {e["mode"] for e in entries} == {"create"}
    assert {sim_server.connection(e["connection_id"])["transport"] for e in entries} == {"http"}


TRANSCRIPT: list[Item] = [
    user("/research 2 tides"),
    {"type": "function_call", "call_id": "call_1", "name": "search_notes", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "call_1", "output": "high tide 4:05"},
    {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Tides are at 4:05."}],
    },
]


def with_delivery_fields(item: Item, index: int) -> Item:
    """The item as a client keeps it from the stream: ids, status, annotations, keys reversed."""
    kept = {**item, "id": f"item_{index}", "status": "completed"}
    if item.get("role") == "assistant":
        kept["content"] = [{**p, "annotations": [], "logprobs": []} for p in item["content"]]
    return dict(reversed(kept.items()))


def test_the_hash_ignores_key_order_ids_and_status() -> None:
    kept = [with_delivery_fields(item, i) for i, item in enumerate(TRANSCRIPT)]
    assert list(kept[1]) != list(TRANSCRIPT[1])
    assert context_hash(kept) == context_hash(TRANSCRIPT)


def test_the_hash_equates_a_string_message_with_its_content_parts() -> None:
    short = [{"role": "user", "content": "/research 2 tides"}, *TRANSCRIPT[1:]]
    assert context_hash(short) == context_hash(TRANSCRIPT)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda t: t[:2] + t[3:], id="missing item"),
        pytest.param(lambda t: [*t[:3], t[2], *t[3:]], id="duplicated item"),
        pytest.param(lambda t: [t[0], t[2], t[1], t[3]], id="reordered items"),
        pytest.param(lambda t: [*t[:2], {**t[2], "output": "high tide 4:06"}, t[3]], id="output"),
        pytest.param(lambda t: [t[0], {**t[1], "arguments": '{"q":1}'}, *t[2:]], id="arguments"),
        pytest.param(lambda t: [user("/research 3 tides"), *t[1:]], id="user text"),
        pytest.param(lambda t: [*t, user("and now?")], id="extra item"),
    ],
)
def test_the_hash_notices_a_changed_missing_or_duplicated_item(
    damage: Callable[[list[Item]], list[Item]],
) -> None:
    assert context_hash(damage(TRANSCRIPT)) != context_hash(TRANSCRIPT)
