"""One process: a run outlives its tabs, a tab catches up from the feed, a slow tab is bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from agents.live.feed import Head
from agents.live.registry import RUNNERS
from agents.live.subscription import Subscription
from agents.models import Item, Session, Step
from agents.run.transcript import user_message
from devtools.page import Page
from playground import render
from playground.consumers import SessionConsumer
from playground.outbox import LIMIT_BYTES
from playground.protocol import ACK_WINDOW as WINDOW
from tests.simserver import SimServer
from tests.tabs import Tab, new_browser, new_session
from tests.test_agent_loop import research_session

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("runners")]

UseUpstream = Callable[[SimServer], SimServer]


async def items_of(session: Session) -> list[Item]:
    return [i async for i in Item.objects.filter(session=session).order_by("position")]


def backlogs(session_id: str) -> list[tuple[int, int]]:
    """What waits in the server's outbox of each socket on the session (none before the
    first socket has attached: a tab's socket is accepted before it attaches)."""
    runner = RUNNERS.get(session_id)
    sockets = runner.listeners if runner is not None else set()
    views = [s.view for s in sockets if isinstance(s, Subscription)]
    return [v.outbox.backlog for v in views if isinstance(v, SessionConsumer) and v.outbox]


def page_of(tab: Tab) -> Page:
    page = Page()
    for frame in tab.frames:
        page.apply(frame)
    return page


async def test_a_run_outlives_its_tabs_and_a_tab_back_within_the_grace_continues_warm(
    start_sim: Callable[..., SimServer], use_upstream: UseUpstream
) -> None:
    server = use_upstream(start_sim("--cost", "tokens_per_s=1000"))
    browser = await new_browser()
    session = await new_session(browser)
    tab = await Tab(str(session.pk), browser).open()
    await tab.send("/chat 800 a reply nobody watches to the end")
    await tab.until(r"beforeend:#live-[^\"]+-text")
    await tab.close()  # every tab gone, mid-run

    runner = RUNNERS[str(session.pk)]
    assert runner.busy
    assert not runner.listeners
    for _ in range(200):
        await asyncio.sleep(0.05)
        if runner.turn_task is None:
            break
    items = await items_of(session)
    assert [(i.role, i.status) for i in items] == [
        ("user", "completed"),
        ("assistant", "completed"),
    ]
    assert len(items[1].text.split()) > 700  # the whole reply, not what was seen

    again = await Tab(str(session.pk), browser).open()
    await again.recv()  # the snapshot
    snapshot = page_of(again)
    assert snapshot.texts() == [" ".join(i.text.split()) for i in items]
    assert snapshot.busy is False
    await again.turn("/chat 20 and one more")
    await again.close()
    (connection,) = [c for c in server.connections() if c["transport"] == "websocket"]
    modes = [r["mode"] for r in server.connection(connection["id"])["log"]]
    assert modes == ["warm", "delta", "delta"]  # one socket: the cache stayed warm
    steps = [s async for s in Step.objects.filter(session=session).order_by("id")]
    assert [s.socket for s in steps] == ["fresh", "reused", "reused"]


async def test_a_slow_tab_is_flow_controlled_and_ends_with_the_whole_text(
    start_sim: Callable[..., SimServer], use_upstream: UseUpstream
) -> None:
    # 5,000 tokens at 1,000 tokens/s; the tab reads 100 frames/s, a tenth of the token rate.
    use_upstream(start_sim("--cost", "tokens_per_s=1000"))
    browser = await new_browser()
    session = await new_session(browser)
    slow = await Tab(str(session.pk), browser).open()
    assert slow.communicator is not None
    queue = slow.communicator.output_queue  # what the server sent and the tab has not read
    await slow.send("/chat 5000 a very long answer")
    unread: list[int] = []
    backlog: list[tuple[int, int]] = []
    started = False
    while True:
        unread.append(queue.qsize())
        backlog += backlogs(str(session.pk))
        frame = await slow.recv()
        started = started or 'data-busy="true"' in frame
        if started and 'data-busy="false"' in frame:
            break
        await asyncio.sleep(0.01)
    await slow.close()
    items = await items_of(session)
    reply = items[1]
    assert reply.status == "completed"
    assert len(reply.text.split()) > 4000
    # The server never had more than its window of frames out to the tab, however far behind,
    # and the coalesced text brought the tab to exactly the reply.
    assert max(unread) <= WINDOW
    assert page_of(slow).texts() == [" ".join(i.text.split()) for i in items]
    assert len(slow.frames) < 1000  # far fewer frames than the 5,000 deltas
    # And what waits on the server stays small: the text coalesces into a few fragments.
    assert backlog
    assert max(fragments for fragments, _ in backlog) <= 4
    assert max(size for _, size in backlog) < LIMIT_BYTES


async def test_a_tab_too_far_behind_is_resynced_not_dropped(
    start_sim: Callable[..., SimServer], use_upstream: UseUpstream
) -> None:
    """Past the queue's limit the queue is replaced by a fresh snapshot, never cut."""
    from playground import outbox

    use_upstream(start_sim("--cost", "tokens_per_s=2000"))
    session, browser = await research_session(12)
    tab = await Tab(str(session.pk), browser).open()
    await tab.send("/research 12 harbours")  # many items, steps and tool outputs
    # A tab that reads slowly: its window fills, and past a small limit of waiting fragments
    # its queue is replaced by a snapshot.
    original = outbox.LIMIT
    outbox.LIMIT = 4
    try:
        started = False
        while True:
            frame = await tab.recv(30)
            started = started or 'data-busy="true"' in frame
            if started and 'data-busy="false"' in frame:
                break
            await asyncio.sleep(0.1)
    finally:
        outbox.LIMIT = original
    frames = tab.frames
    await tab.close()
    page = Page()
    for frame in frames:
        page.apply(frame)
    items = await items_of(session)
    assert sum('id="transcript" hx-swap-oob="true"' in f for f in frames) >= 2  # resynced
    assert page.texts() == [" ".join(i.text.split()) for i in items]


async def test_a_snapshot_keeps_the_durable_transcript_of_an_epoch_and_base() -> None:
    """Below a runner's base nothing changes during its epoch: reconnects reuse its HTML, and a
    new base or a new epoch (a new runner) reads the database again."""
    session = await new_session(await new_browser())
    sid = str(session.pk)
    first = await Item.objects.acreate(session=session, position=0, data=user_message("tides"))
    head = Head("7", base=1, seq=3, running=False, turn=None)
    assert "tides" in await render.durable_transcript(sid, head)
    # The database changes under the same epoch and base (a runner never does this): the kept
    # transcript shows it was not read again.
    first.data = user_message("harbours")
    await first.asave()
    assert "tides" in await render.durable_transcript(sid, head)
    # A new base, a new epoch, a branch switch (its rev), or no log at all.
    others = (
        Head("7", 2, 5, False, None),
        Head("8", 1, 0, False, None),
        Head("7", 1, 3, False, None, rev=1),
        None,
    )
    for other in others:
        assert "harbours" in await render.durable_transcript(sid, other)
