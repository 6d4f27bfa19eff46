"""The browser socket end to end: consumer → runner → one upstream socket → the simulator."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from agents.models import Item, Session, Step
from simulator import context_hash
from tests.simserver import SimServer
from tests.tabs import Tab, new_browser, new_session

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("runners")]

UseUpstream = Callable[[SimServer], SimServer]


async def items_of(session: Session) -> list[Item]:
    return [i async for i in Item.objects.filter(session=session).order_by("position")]


async def steps_of(session: Session) -> list[Step]:
    return [s async for s in Step.objects.filter(session=session).order_by("id")]


def websocket_connections(server: SimServer) -> list[dict[str, Any]]:
    return [c for c in server.connections() if c["transport"] == "websocket"]


async def test_a_message_streams_a_reply_that_is_persisted(
    sim_server: SimServer, use_upstream: UseUpstream
) -> None:
    use_upstream(sim_server)
    browser = await new_browser()
    session = await new_session(browser)
    tab = await Tab(str(session.pk), browser).open()
    frames = await tab.turn("/chat 40 tide tables")
    await tab.close()

    items = await items_of(session)
    assert [(i.kind, i.role, i.status) for i in items] == [
        ("message", "user", "completed"),
        ("message", "assistant", "completed"),
    ]
    reply = items[1].text
    assert len(reply.split()) > 20
    # The reply streamed as deltas into a live element, then was replaced by the rendered item.
    assert 'hx-swap-oob="beforeend:#live-' in frames
    assert f'id="item-{items[1].position}"' in frames
    assert reply.split()[0] in frames


async def test_ten_turns_use_one_connection_one_warmup_then_deltas_matching_the_oracle(
    start_sim: Callable[..., SimServer], use_upstream: UseUpstream
) -> None:
    server = use_upstream(start_sim("--seed", "3"))
    browser = await new_browser()
    session = await new_session(browser, instructions="Answer briefly.")
    tab = await Tab(str(session.pk), browser).open()
    for turn in range(10):
        await tab.turn(f"/chat 15 question number {turn}")
    await tab.close()

    connections = websocket_connections(server)
    assert len(connections) == 1
    log = server.connection(connections[0]["id"])
    modes = [r["mode"] for r in log["log"]]
    assert modes == ["warm"] + ["delta"] * 10
    assert all(r["cache"] == "hit" for r in log["log"][1:])

    steps = await steps_of(session)
    assert [s.mode for s in steps] == ["warm"] + ["delta"] * 10
    items = await items_of(session)
    users = [index for index, item in enumerate(items) if item.role == "user"]
    for step, user_index in zip(steps[1:], users, strict=True):
        oracle = server.oracle(step.response_id)
        transcript = [item.data for item in items[: user_index + 1]]
        assert oracle["context_hash"] == context_hash(transcript)


async def test_two_tabs_follow_one_run_over_a_single_upstream_connection(
    start_sim: Callable[..., SimServer], use_upstream: UseUpstream
) -> None:
    server = use_upstream(start_sim())
    browser = await new_browser()
    session = await new_session(browser)
    first = await Tab(str(session.pk), browser).open()
    second = await Tab(str(session.pk), browser).open()
    await first.turn("/chat 30 shared stream")
    # The second tab saw the same run: the user's message, the streamed reply, the end.
    await second.until(r'data-busy="false"[\s\S]*$|class="step"')
    await second.until(r'data-busy="false"')
    items = await items_of(session)
    seen = "".join(second.frames)
    assert f'id="item-{items[0].position}"' in seen
    assert f'id="item-{items[1].position}"' in seen
    await first.close()
    await second.close()
    assert len(websocket_connections(server)) == 1


async def test_stop_aborts_the_upstream_and_the_next_turn_starts_a_fresh_full_create(
    start_sim: Callable[..., SimServer], use_upstream: UseUpstream
) -> None:
    # 100 tokens/s: a 600-token reply streams for seconds, long enough to stop it mid-way.
    server = use_upstream(start_sim("--profile", "realistic", "--cost", "ttft_ms=0"))
    browser = await new_browser()
    session = await new_session(browser)
    tab = await Tab(str(session.pk), browser).open()
    await tab.send("/chat 600 a very long answer")
    await tab.until(r"beforeend:#live-[^\"]+-text")
    await tab.stop()
    await tab.until(r'data-busy="false"')

    items = await items_of(session)
    assert [(i.role, i.status) for i in items] == [("user", "completed"), ("assistant", "stopped")]
    partial = items[1].text
    assert 0 < len(partial.split()) < 600
    assert "stopped" in "".join(tab.frames[-3:])
    first_connection = websocket_connections(server)[0]
    assert server.connection(first_connection["id"])["closed"] is True

    await tab.turn("/chat 10 and now something short")
    await tab.close()
    connections = websocket_connections(server)
    assert len(connections) == 2
    steps = await steps_of(session)
    last = steps[-1]
    assert (last.mode, last.socket, last.status) == ("create", "fresh", "completed")
    # The fresh socket's full context is exactly our transcript, stopped partial included.
    items = await items_of(session)
    context = [item.data for item in items if item.in_context][:3]
    assert server.oracle(last.response_id)["context_hash"] == context_hash(context)


async def test_a_second_message_while_running_is_answered_busy(
    start_sim: Callable[..., SimServer], use_upstream: UseUpstream
) -> None:
    use_upstream(start_sim("--profile", "realistic", "--cost", "ttft_ms=0"))
    browser = await new_browser()
    session = await new_session(browser)
    tab = await Tab(str(session.pk), browser).open()
    await tab.send("/chat 300 the first question")
    await tab.until(r'data-busy="true"')
    await tab.send("a second question")
    frame = await tab.until(r'data-code="busy"')
    assert "A run is in progress" in frame
    await tab.stop()
    await tab.until(r'data-busy="false"')
    await tab.close()
    users = [i for i in await items_of(session) if i.role == "user"]
    assert [u.text for u in users] == ["/chat 300 the first question"]


async def test_saving_tools_warms_the_upstream_again_so_the_next_step_is_a_delta(
    start_sim: Callable[..., SimServer], use_upstream: UseUpstream
) -> None:
    import asyncio

    from django.test import AsyncClient

    server = use_upstream(start_sim())
    browser = await new_browser()
    session = await new_session(browser)
    tab = await Tab(str(session.pk), browser).open()
    client = AsyncClient()
    client.cookies["sessionid"] = browser
    fields = {"new-name": "lookup", "new-mode": "mock", "new-mock_output": "ok"}
    response = await client.post(f"/sessions/{session.pk}/tools/", fields)
    assert response.status_code == 200
    await tab.until("Tools saved")
    for _ in range(100):  # the second warm-up runs in the background
        if await Step.objects.filter(session=session, mode="warm").acount() == 2:
            break
        await asyncio.sleep(0.05)
    await tab.turn("/lookup tide tables")
    await tab.close()
    (connection,) = websocket_connections(server)
    modes = [r["mode"] for r in server.connection(connection["id"])["log"]]
    assert modes[:3] == ["warm", "warm", "delta"]


async def test_the_first_message_titles_the_session_in_every_tab_once(
    sim_server: SimServer, use_upstream: UseUpstream
) -> None:
    use_upstream(sim_server)
    browser = await new_browser()
    session = await new_session(browser)
    other = await new_session(browser, title="Harbour notes")  # renamed: it keeps its title
    tab = await Tab(str(session.pk), browser).open()
    watcher = await Tab(str(session.pk), browser).open()
    title = "/chat 5 What are the tide tables at Brest, Saint-Malo and…"
    frames = await tab.turn("/chat 5 What are the tide tables at Brest, Saint-Malo and Cherbourg?")
    assert f'<h1 id="session-title" hx-swap-oob="true">{title}</h1>' in frames
    assert f"<title>{title} · Agent playground</title>" in frames
    assert f'<li id="listed-{session.pk}" class="current" hx-swap-oob="true">' in frames
    assert re.search(
        rf'<input [^>]*value="{title}"[^>]*hx-swap-oob="true"[^>]*id="id_title"', frames
    )
    await watcher.until(r'<h1 id="session-title"')  # every tab of the session
    assert (await Session.objects.aget(pk=session.pk)).title == title
    # Only the first message: the next one leaves the title alone and says nothing of it.
    assert 'id="session-title"' not in await tab.turn("/chat 5 and the next week?")
    await tab.close()
    await watcher.close()

    renamed = await Tab(str(other.pk), browser).open()
    assert 'id="session-title"' not in await renamed.turn("/chat 5 tides")
    await renamed.close()
    assert (await Session.objects.aget(pk=other.pk)).title == "Harbour notes"
