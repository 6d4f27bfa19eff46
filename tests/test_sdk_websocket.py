"""WebSocket mode through the official ``openai`` SDK, unmodified, against the standalone server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from openai.resources.responses.responses import AsyncResponsesConnection, ResponsesConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.simserver import API_KEY, SimServer

Event = dict[str, Any]
MODEL = "sim-model"
TIMEOUT = 10.0
DONE = {"response.completed", "response.incomplete", "response.failed", "error"}
SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
TOOLS = [{"type": "function", "name": "lookup", "parameters": SCHEMA, "strict": True}]
ABSENT = "<no stream_id>"


@pytest.fixture
async def aclient(sim_server: SimServer) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(api_key="k", base_url=sim_server.base_url, max_retries=0) as client:
        yield client


def faults(spec: str) -> dict[str, str]:
    return {"sim_faults": spec}


async def recv(conn: AsyncResponsesConnection) -> Event:
    return cast(Event, json.loads(await asyncio.wait_for(conn.recv_bytes(), TIMEOUT)))


async def turn(conn: AsyncResponsesConnection, store: bool = False, **fields: Any) -> list[Event]:
    """Send one response.create; its events up to a terminal event or an error."""
    await conn.response.create(model=MODEL, store=store, **fields)
    events: list[Event] = []
    while not events or events[-1]["type"] not in DONE:
        events.append(await recv(conn))
    return events


def sync_turn(conn: ResponsesConnection, **fields: Any) -> list[Any]:
    """One whole turn as typed events (closing with unread frames stalls the sync client)."""
    conn.response.create(model=MODEL, store=False, **fields)
    events: list[Any] = []
    while not events or events[-1].type not in DONE:
        # ResponsesConnection.recv() has no timeout; read the same bytes with one.
        events.append(conn.parse_event(conn._connection.recv(timeout=TIMEOUT, decode=False)))
    return events


def response_id(events: list[Event]) -> str:
    assert events[-1]["type"] == "response.completed", events[-1]
    return cast(str, events[-1]["response"]["id"])


def refusal(events: list[Event]) -> tuple[Any, ...]:
    """The lone error event a refused request gets: status, code, param and stream_id."""
    assert [e["type"] for e in events] == ["error"], events
    error = events[0]["error"]
    return events[0]["status"], error["code"], error["param"], events[0].get("stream_id", ABSENT)


def log_of(server: SimServer, rid: str) -> list[Event]:
    """The request records of the connection that produced response ``rid``."""
    return cast(list[Event], server.connection(server.oracle(rid)["connection_id"])["log"])


def check_text_turn(events: list[Any]) -> None:
    """A complete text turn as typed SDK events: exact order, numbering, text and usage."""
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1
    head = ["created", "in_progress", "output_item.added", "content_part.added"]
    tail = ["output_text.done", "content_part.done", "output_item.done", "completed"]
    expected = [*head, *["output_text.delta"] * len(deltas), *tail]
    assert [e.type for e in events] == [f"response.{kind}" for kind in expected]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert all(e.stream_id is None for e in events)
    text = "".join(d.delta for d in deltas)
    final = events[-1].response
    assert text == events[-4].text == events[-2].item.content[0].text == final.output_text
    assert final.status == "completed"
    assert final.id == events[0].response.id
    assert final.usage.input_tokens > 0
    assert final.usage.input_tokens_details.cached_tokens == 0
    assert final.usage.output_tokens == len(deltas)


async def test_an_async_connection_streams_a_complete_text_turn(aclient: AsyncOpenAI) -> None:
    async with aclient.responses.connect() as conn:
        await conn.response.create(model=MODEL, input="/chat 40 otters", store=False)
        events: list[Any] = []
        while not events or events[-1].type not in DONE:
            events.append(await asyncio.wait_for(conn.recv(), TIMEOUT))
    check_text_turn(events)


def test_a_sync_connection_streams_a_complete_text_turn(sim_server: SimServer) -> None:
    with (
        OpenAI(api_key="k", base_url=sim_server.base_url, max_retries=0) as client,
        client.responses.connect() as conn,
    ):
        events = sync_turn(conn, input="/chat 40 otters")
    check_text_turn(events)


async def test_three_turns_on_one_socket_hit_the_cache(
    aclient: AsyncOpenAI, sim_server: SimServer
) -> None:
    async with aclient.responses.connect() as conn:
        ids = [response_id(await turn(conn, input="/chat 20 tea"))]
        for question in ("And coffee?", "And cocoa?"):
            done = await turn(conn, input=question, previous_response_id=ids[-1])
            ids.append(response_id(done))
            usage = done[-1]["response"]["usage"]
            assert 0 < usage["input_tokens_details"]["cached_tokens"] < usage["input_tokens"]
    log = log_of(sim_server, ids[-1])
    assert [r["response_id"] for r in log] == ids
    assert [(r["mode"], r["cache"]) for r in log] == [("create", "none"), *[("delta", "hit")] * 2]
    assert [r["previous_response_id"] for r in log] == [None, *ids[:2]]


async def test_a_warm_up_gives_a_chainable_id_and_the_first_turn_hits_the_cache(
    aclient: AsyncOpenAI, sim_server: SimServer
) -> None:
    setup: dict[str, Any] = {"instructions": "Be terse.", "tools": TOOLS}
    async with aclient.responses.connect() as conn:
        warm = await turn(conn, generate=False, **setup)
        assert [e["type"] for e in warm] == ["response.created", "response.completed"]
        assert warm[-1]["response"]["output"] == []
        # Instructions are not inherited and the guide resends tools every turn; unchanged, both
        # come from the cache.
        first = await turn(
            conn, input="/chat 20 kites", previous_response_id=response_id(warm), **setup
        )
    final = first[-1]["response"]
    assert final["status"] == "completed"
    assert final["output"][0]["type"] == "message"
    assert final["usage"]["input_tokens_details"]["cached_tokens"] > 0
    log = log_of(sim_server, final["id"])
    assert [(r["mode"], r["cache"]) for r in log] == [("warm", "none"), ("delta", "hit")]


async def test_a_store_false_miss_is_an_error_and_the_socket_keeps_serving(
    aclient: AsyncOpenAI,
) -> None:
    async with aclient.responses.connect() as other:
        parent = response_id(await turn(other, input="/chat 10 owls"))
    async with aclient.responses.connect() as conn:
        miss = await turn(conn, input="more", previous_response_id=parent)
        assert refusal(miss) == (400, "previous_response_not_found", "previous_response_id", ABSENT)
        assert parent in miss[0]["error"]["message"]
        assert (await turn(conn, input="/chat 10 owls"))[-1]["type"] == "response.completed"


async def test_a_store_true_miss_is_hydrated_and_pays_the_hydrate_cost(
    start_sim: Callable[..., SimServer],
) -> None:
    server = start_sim("--cost", "hydrate_ms=400")
    async with AsyncOpenAI(api_key="k", base_url=server.base_url, max_retries=0) as sdk:
        async with sdk.responses.connect() as first:
            parent = response_id(await turn(first, store=True, input="/chat 10 moss"))
        async with sdk.responses.connect() as conn:
            hydrated = response_id(
                await turn(conn, store=True, input="go on", previous_response_id=parent)
            )
            hit = response_id(
                await turn(conn, store=True, input="and?", previous_response_id=hydrated)
            )
    slow, fast = log_of(server, hit)
    assert (slow["response_id"], slow["cache"]) == (hydrated, "hydrated")
    assert (fast["response_id"], fast["cache"]) == (hit, "hit")
    assert slow["charged_ms"] >= 400 > fast["charged_ms"]
    delay = slow["first_event_ms"] - slow["received_ms"]
    assert delay - (fast["first_event_ms"] - fast["received_ms"]) >= 380
    assert server.oracle(hydrated)["cache"] == "hydrated"


async def test_a_failed_same_lane_continuation_evicts_its_parent(aclient: AsyncOpenAI) -> None:
    async with aclient.responses.connect(extra_query=faults("error_frame=2:server_error")) as conn:
        parent = response_id(await turn(conn, input="/chat 10 rain"))
        failed = await turn(conn, input="more", previous_response_id=parent)
        assert refusal(failed)[:2] == (500, "server_error")
        retry = await turn(conn, input="more", previous_response_id=parent)
        assert refusal(retry)[1] == "previous_response_not_found"


async def test_a_failed_cross_lane_fork_does_not_evict_its_parent(aclient: AsyncOpenAI) -> None:
    async with aclient.responses.connect(extra_query=faults("error_frame=2:server_error")) as conn:
        parent = response_id(await turn(conn, input="/chat 10 rain", stream_id="main"))
        fork = await turn(conn, input="fork", previous_response_id=parent, stream_id="side")
        assert refusal(fork) == (500, "server_error", None, "side")
        again = await turn(conn, input="more", previous_response_id=parent, stream_id="main")
    assert again[-1]["type"] == "response.completed"
    assert again[-1]["response"]["usage"]["input_tokens_details"]["cached_tokens"] > 0


async def test_two_lanes_interleave_on_one_socket_and_a_fork_hits_the_cache(
    aclient: AsyncOpenAI, sim_server: SimServer
) -> None:
    # Lane a pauses 0.8 s after two events, so b streams while a is in progress even when the
    # machine is too loaded for the two to overlap by themselves.
    async with aclient.responses.connect(extra_query=faults("stall_after_events=2@1:800")) as conn:
        for lane in ("a", "b"):
            await conn.response.create(
                model=MODEL, input=f"/chat 100 lane {lane}", store=False, stream_id=lane
            )
        events: list[Event] = []
        while sum(e["type"] == "response.completed" for e in events) < 2:
            events.append(await recv(conn))
        ends = {e["stream_id"]: e["response"]["id"] for e in events if e["type"] in DONE}
        fork = await turn(conn, input="and here?", stream_id="c", previous_response_id=ends["a"])
    lanes = [e["stream_id"] for e in events]
    assert set(lanes) == {"a", "b"}
    assert lanes.index("b") < len(lanes) - 1 - lanes[::-1].index("a")  # b starts before a ends
    assert lanes.index("a") < len(lanes) - 1 - lanes[::-1].index("b")
    for lane in ("a", "b"):
        mine = [e for e in events if e["stream_id"] == lane]
        assert [e["sequence_number"] for e in mine] == list(range(len(mine)))
        assert mine[-1]["type"] == "response.completed"
    assert all(e["stream_id"] == "c" for e in fork)
    assert fork[-1]["response"]["usage"]["input_tokens_details"]["cached_tokens"] > 0
    assert log_of(sim_server, response_id(fork))[-1]["cache"] == "hit"


async def test_events_of_the_default_lane_carry_no_stream_id(aclient: AsyncOpenAI) -> None:
    async with aclient.responses.connect() as conn:
        events = await turn(conn, input="/chat 10 fog")
        error = await turn(conn, input="x", previous_response_id="resp_unknown")
    assert events[-1]["type"] == "response.completed"
    assert refusal(error)[1:] == ("previous_response_not_found", "previous_response_id", ABSENT)
    assert all("stream_id" not in e for e in events)


async def test_the_33rd_named_lane_is_refused(aclient: AsyncOpenAI) -> None:
    async with aclient.responses.connect() as conn:
        for n in range(33):
            await conn.response.create(model=MODEL, store=False, generate=False, stream_id=f"l{n}")
        events: list[Event] = []
        while len(events) < 32 * 2 + 1:
            events.append(await recv(conn))
        done = [e["stream_id"] for e in events if e["type"] == "response.completed"]
        assert sorted(done) == sorted(f"l{n}" for n in range(32))  # lanes finish in any order
        refused = [e for e in events if e["type"] == "error"]
        assert refusal(refused) == (400, "websocket_stream_limit_reached", "stream_id", "l32")
        again = await turn(conn, input="/chat 10 still here", stream_id="l0")
        assert again[-1]["type"] == "response.completed"


@pytest.mark.parametrize("stream_id", ["", "x" * 257, "two words", "a/b", "ü"])
async def test_an_invalid_stream_id_is_refused_without_a_stream_id(
    aclient: AsyncOpenAI, stream_id: str
) -> None:
    async with aclient.responses.connect() as conn:
        refused = await turn(conn, input="hi", stream_id=stream_id)
        assert refusal(refused) == (400, "invalid_stream_id", "stream_id", ABSENT)
        fine = await turn(conn, input="/chat 10 ok", stream_id="x" * 256)
        assert fine[-1]["type"] == "response.completed"


async def test_an_idle_connection_is_closed_at_its_age_limit(aclient: AsyncOpenAI) -> None:
    started = time.monotonic()
    async with aclient.responses.connect(extra_query=faults("max_age_s=1")) as conn:
        assert (await turn(conn, input="/chat 10 quick"))[-1]["type"] == "response.completed"
        limit = await recv(conn)
        elapsed = time.monotonic() - started
        with pytest.raises(ConnectionClosed):
            await recv(conn)
    assert 0.9 <= elapsed < 5
    assert refusal([limit]) == (400, "websocket_connection_limit_reached", None, ABSENT)


async def test_a_create_after_the_age_limit_gets_the_limit_error(aclient: AsyncOpenAI) -> None:
    # Response 1 stalls after two events, so the connection is busy when its age runs out.
    spec = "max_age_s=1;stall_after_events=2@1"
    async with aclient.responses.connect(extra_query=faults(spec)) as conn:
        started = time.monotonic()  # the server's clock started before the upgrade completed
        await conn.response.create(model=MODEL, input="/chat 10 slow", store=False, stream_id="s")
        assert [(await recv(conn))["type"] for _ in range(2)] == [
            "response.created",
            "response.in_progress",
        ]
        await asyncio.sleep(max(1.2 - (time.monotonic() - started), 0))  # past the deadline
        refused = await turn(conn, input="late", stream_id="s")
        with pytest.raises(ConnectionClosed):
            await recv(conn)
    assert refusal(refused) == (400, "websocket_connection_limit_reached", None, ABSENT)


def test_a_refused_upgrade_raises_invalid_status(start_sim: Callable[..., SimServer]) -> None:
    # The harness polls the server with API_KEY, so that key is accepted as well.
    server = start_sim("--api-key", "good-key", "--api-key", API_KEY)
    with OpenAI(api_key="bad-key", base_url=server.base_url, max_retries=0) as bad:
        with pytest.raises(InvalidStatus) as refused, bad.responses.connect():
            pass
        assert refused.value.response.status_code == 401
        with pytest.raises(openai.AuthenticationError):
            bad.responses.create(model=MODEL, input="hi", store=False)
    with OpenAI(api_key="good-key", base_url=server.base_url, max_retries=0) as good:
        with good.responses.connect() as conn:
            assert sync_turn(conn, input="/chat 10 hi")[-1].type == "response.completed"
        assert good.responses.create(model=MODEL, input="hi", store=False).status == "completed"


@pytest.mark.parametrize(
    ("spec", "status", "retry_after"), [("426", 426, None), ("429:3", 429, "3")]
)
async def test_an_upgrade_status_fault_refuses_the_upgrade(
    aclient: AsyncOpenAI, spec: str, status: int, retry_after: str | None
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with aclient.responses.connect(extra_query=faults(f"upgrade_status={spec}")):
            pass
    assert refused.value.response.status_code == status
    assert refused.value.response.headers.get("retry-after") == retry_after


async def test_steering_a_running_response_is_not_supported(aclient: AsyncOpenAI) -> None:
    async with aclient.responses.connect(extra_query=faults("stall_after_events=2@1")) as conn:
        await conn.response.create(model=MODEL, input="/chat 10 x", store=False, stream_id="lane")
        running = (await recv(conn))["response"]["id"]
        assert (await recv(conn))["type"] == "response.in_progress"
        await conn.response.steer(input="shorter please", previous_response_id=running)
        failed = await asyncio.wait_for(conn.recv(), TIMEOUT)
    assert failed.type == "response.steer.failed"
    assert failed.error.code == "steering_not_supported"
    assert failed.steer.previous_response_id == running
    assert failed.stream_id == "lane"


@pytest.mark.parametrize("target", ["completed", "unknown"])
async def test_steering_a_finished_or_unknown_response_fails(
    aclient: AsyncOpenAI, target: str
) -> None:
    async with aclient.responses.connect() as conn:
        done = response_id(await turn(conn, input="/chat 10 y"))
        rid = done if target == "completed" else "resp_does_not_exist"
        await conn.response.steer(input="more", previous_response_id=rid)
        failed = await recv(conn)
    assert failed["type"] == "response.steer.failed"
    expected = "response_already_completed" if target == "completed" else "response_not_found"
    assert failed["error"]["code"] == expected
    assert failed["steer"]["previous_response_id"] == rid


async def test_stream_true_is_tolerated_and_background_is_rejected(aclient: AsyncOpenAI) -> None:
    async with aclient.responses.connect() as conn:
        streamed = await turn(conn, input="/chat 10 z", stream=True)
        background = await turn(conn, input="/chat 10 z", background=True)
        after = await turn(conn, input="/chat 10 z")
    assert refusal(background)[::2] == (400, "background")
    texts = [t[-1]["response"]["output"][0]["content"][0]["text"] for t in (streamed, after)]
    assert texts[0] == texts[1]  # the same answer: "stream": true changed nothing
