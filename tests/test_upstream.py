"""The upstream session client: the delta rule, prewarm, and a new socket's full create."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from agents.live.runner import SessionRunner
from agents.upstream import websocket
from agents.upstream.delta import Chain, fingerprint, plan
from agents.upstream.turn import UpstreamError
from agents.upstream.websocket import UpstreamSession
from tests.simserver import API_KEY, SimServer
from tests.tabs import Tab, new_browser, new_session

Item = dict[str, Any]
FIELDS = {"model": "sim", "store": False, "instructions": "Be brief."}


def user(text: str) -> Item:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def chain_after(context: list[Item], *, calls: frozenset[str] = frozenset()) -> Chain:
    return Chain(fingerprint(FIELDS), tuple(fingerprint(i) for i in context), "resp_1", calls)


def test_a_context_that_extends_the_chain_is_sent_as_a_delta() -> None:
    history = [user("one"), {"type": "message", "role": "assistant", "content": "two"}]
    chosen = plan(chain_after(history), FIELDS, [*history, user("three")])
    assert (chosen.mode, chosen.previous_response_id) == ("delta", "resp_1")
    assert chosen.input == [user("three")]


def test_items_compare_as_canonical_json() -> None:
    stored = {
        "id": "msg_1",
        "status": "completed",
        "role": "user",
        "type": "message",
        "content": "a",
    }
    again = {"type": "message", "content": "a", "role": "user"}
    assert plan(chain_after([stored]), FIELDS, [again, user("b")]).mode == "delta"


@pytest.mark.parametrize(
    "change",
    [
        {"instructions": "Be verbose."},
        {"model": "other"},
        {"store": True},
        {"tools": [{"type": "function", "name": "f", "parameters": {}}]},
    ],
)
def test_changed_request_fields_force_a_full_create(change: dict[str, Any]) -> None:
    history = [user("one")]
    chosen = plan(chain_after(history), {**FIELDS, **change}, [*history, user("two")])
    assert (chosen.mode, chosen.previous_response_id) == ("create", None)
    assert len(chosen.input) == 2


def test_an_edited_history_forces_a_full_create() -> None:
    chosen = plan(chain_after([user("one")]), FIELDS, [user("edited"), user("two")])
    assert chosen.mode == "create"


def test_no_chain_means_a_full_create() -> None:
    assert plan(None, FIELDS, [user("one")]).mode == "create"


def test_a_delta_must_answer_every_open_function_call() -> None:
    call = {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"}
    chain = chain_after([user("one"), call], calls=frozenset({"call_1"}))
    unanswered = plan(chain, FIELDS, [user("one"), call, user("two")])
    assert unanswered.mode == "create"
    output = {"type": "function_call_output", "call_id": "call_1", "output": "42"}
    assert plan(chain, FIELDS, [user("one"), call, output]).mode == "delta"


async def test_prewarm_then_a_chained_first_turn_then_a_full_create_on_a_new_socket(
    start_sim: Callable[..., SimServer],
) -> None:
    server = start_sim()
    upstream = UpstreamSession(server.base_url, server.api_key)
    try:
        warm = await upstream.prewarm(FIELDS, [])
        assert warm is not None
        assert warm.metrics.mode == "warm"
        assert await upstream.prewarm(FIELDS, []) is None  # already warm: skipped
        async with upstream.turn(FIELDS, [user("/chat 10 hi")]) as turn:
            async for _ in turn:
                pass
        assert (turn.metrics.mode, turn.metrics.socket) == ("delta", "reused")
        assert turn.metrics.previous_response_id == warm.response_id
        assert turn.metrics.ttft_ms is not None
        assert turn.metrics.output_tokens > 0
        upstream.discard()
        context = [user("/chat 10 hi"), *turn.output, user("/chat 10 again")]
        async with upstream.turn(FIELDS, context) as second:
            async for _ in second:
                pass
        assert (second.metrics.mode, second.metrics.socket) == ("create", "fresh")
        assert second.metrics.previous_response_id == ""
    finally:
        await upstream.close()
    modes = [[r["mode"] for r in server.connection(c["id"])["log"]] for c in server.connections()]
    assert modes == [["warm", "delta"], ["create"]]


async def test_a_refused_upgrade_is_a_clear_error(start_sim: Callable[..., SimServer]) -> None:
    server = start_sim("--api-key", API_KEY)
    upstream = UpstreamSession(server.base_url, "a-wrong-key")
    try:
        with pytest.raises(Exception, match=r"refused the WebSocket \(HTTP 401\)"):
            await upstream.prewarm(FIELDS, [])
    finally:
        await upstream.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("runners")
async def test_the_upstream_outlives_the_last_tab_by_the_idle_grace(
    start_sim: Callable[..., SimServer],
    use_upstream: Callable[[SimServer], SimServer],
    settings: Any,
    runners: dict[str, SessionRunner],
) -> None:
    import asyncio

    server = use_upstream(start_sim())
    settings.IDLE_GRACE_SECONDS = 1.0
    browser = await new_browser()
    session = await new_session(browser)
    tab = await Tab(str(session.pk), browser).open()
    await tab.turn("/chat 10 first")
    await tab.close()
    # Back within the grace: the same socket, still warm (the next step is a delta).
    tab = await Tab(str(session.pk), browser).open()
    await tab.turn("/chat 10 second")
    await tab.close()
    runner = runners[str(session.pk)]
    connected = [runner.websocket.connected]
    await asyncio.sleep(1.5)
    connected.append(runner.websocket.connected)
    assert connected == [True, False]
    assert str(session.pk) not in runners
    connections = [c for c in server.connections() if c["transport"] == "websocket"]
    assert len(connections) == 1
    assert connections[0]["closed"]
    assert [r["mode"] for r in server.connection(connections[0]["id"])["log"]] == [
        "warm",
        "delta",
        "delta",
    ]


async def test_an_upstream_silent_mid_response_is_an_error_after_the_event_timeout(
    start_sim: Callable[..., SimServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One watchdog per response, not a timer per event: a stream that goes quiet fails once
    nothing came for ``EVENT_TIMEOUT``, and its socket is dropped; a slow one does not."""
    monkeypatch.setattr(websocket, "EVENT_TIMEOUT", 0.5)
    server = start_sim()
    upstream = UpstreamSession(server.base_url, server.api_key)
    manager = upstream.client.responses.connect(
        extra_query={"sim_faults": "stall_after_events=3"},
        websocket_connection_options={"compression": None},
    )
    upstream.socket = websocket.UpstreamSocket(await manager.enter())
    try:
        started, seen = time.monotonic(), 0

        async def stream() -> None:
            nonlocal seen
            async with upstream.turn(FIELDS, [user("/chat 50 hi")]) as turn:
                async for _ in turn:
                    seen += 1

        with pytest.raises(UpstreamError, match="sent nothing for"):
            await stream()
        waited = time.monotonic() - started
        assert seen == 3
        assert 0.5 <= waited < 2.0
        assert not upstream.connected
    finally:
        await upstream.close()


async def test_the_watchdog_waits_while_events_keep_coming_and_fires_once_they_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(websocket, "EVENT_TIMEOUT", 0.2)
    loop = asyncio.get_running_loop()
    aborted = asyncio.Event()
    watchdog = websocket.Watchdog(loop, aborted.set)
    for _ in range(6):  # 0.6 s of events 0.1 s apart: three timeouts' worth, never one gap
        await asyncio.sleep(0.1)
        watchdog.last = loop.time()
    assert not aborted.is_set()
    quiet = loop.time()
    await asyncio.wait_for(aborted.wait(), 1)
    assert watchdog.fired
    assert 0.2 <= loop.time() - quiet < 0.45
