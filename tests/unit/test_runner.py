"""The session runner: its commands (send, stop, answers, staff's), its run rate, and closing
when its last tab has been gone for the idle grace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from django.conf import settings

from agents.live.feed import Feed, Head
from agents.live.lease import leases, raise_fence
from agents.live.runner import SessionRunner
from agents.models import Item, Session, Tool
from agents.run.events import CallWaiting, Resync, RunEvent, TurnEnded
from agents.upstream.websocket import UpstreamSession
from tests.unit.helpers import Served, StartSimulator, eventually, settle

pytestmark = [pytest.mark.unit, pytest.mark.django_db(transaction=True)]


class Tab:
    def __init__(self) -> None:
        self.events: list[RunEvent | Resync] = []

    def deliver(self, event: RunEvent | Resync) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


class Runners:
    """Starts runners on sessions, holding their lease as ``claim`` would; ``forgotten``: the
    runners that took themselves out of the registry."""

    def __init__(self) -> None:
        self.started: list[SessionRunner] = []
        self.forgotten: list[SessionRunner] = []

    async def __call__(self, session: Session, idle_grace: float = 60.0) -> SessionRunner:
        sid = str(session.pk)
        holder = f"local {len(self.started)}"
        assert await leases().acquire(sid, holder)
        fence = await raise_fence(sid)
        feed = Feed(sid, Head(str(fence), 0, 0, False, None))
        upstream = UpstreamSession(settings.UPSTREAM_BASE_URL, settings.OPENAI_API_KEY)
        runner = SessionRunner(
            sid, upstream, idle_grace, holder=holder, fence=fence, feed=feed,
            forget=self.forgotten.append,
        )  # fmt: skip
        self.started.append(runner)
        return runner


@pytest.fixture
async def start_runner() -> AsyncIterator[Runners]:
    runners = Runners()
    yield runners
    for runner in runners.started:
        await runner.close()


async def http_session() -> Session:
    """A session over HTTP: attaching warms nothing, so no upstream is needed."""
    return await Session.objects.acreate(model="sim", transport="http")


async def manual_session(served: StartSimulator, use: Callable[[Served], Served]) -> Session:
    """A session whose tool waits for a person: a run stays busy until it is answered."""
    use(await served())
    session = await Session.objects.acreate(model="sim")
    await Tool.objects.acreate(session=session, name="lookup", mode=Tool.Mode.MANUAL)
    return session


async def waiting_call(runner: SessionRunner) -> str:
    await eventually(lambda: len(runner.calls) == 1, within=5)
    return next(iter(runner.calls.pending))


async def ended(tab: Tab) -> TurnEnded:
    await eventually(lambda: bool(tab.of(TurnEnded)), within=5)
    ending: TurnEnded = tab.of(TurnEnded)[-1]
    return ending


# -- commands ------------------------------------------------------------------------------------


async def test_commands_that_cannot_be_done_now_say_why(start_runner: Runners) -> None:
    runner = await start_runner(await http_session())
    assert runner.command("stop") == ("idle", "Nothing is running.")
    assert runner.command("tool_output", "42", "call_1") == (
        "answer_refused",
        "That call is not waiting for an answer (any more).",
    )
    assert runner.command("approve", "yes", "call_1") == (
        "answer_refused",
        "That call is not waiting for an answer (any more).",
    )
    assert runner.command("rotate") == (
        "no_socket",
        "The session has no upstream socket to rotate.",
    )
    assert runner.command("drop") == ("no_socket", "The session has no upstream socket to drop.")
    assert runner.command("inspect") is None
    await runner.close()
    assert runner.command("send", "hello") == (
        "moved",
        "The session moved to another server; try again.",
    )


async def test_a_busy_runner_refuses_a_second_run_and_routes_answers_to_the_call(
    start_runner: Runners, served: StartSimulator, upstream_settings: Callable[[Served], Served]
) -> None:
    session = await manual_session(served, upstream_settings)
    runner = await start_runner(session)
    tab = Tab()
    runner.attach(tab)

    assert runner.command("send", "/lookup the harbour") is None
    call_id = await waiting_call(runner)
    assert runner.busy
    assert tab.of(CallWaiting)[0].call_id == call_id

    assert runner.command("send", "another question") == (
        "busy",
        "A run is in progress: wait for it, or stop it.",
    )
    assert runner.command("approve", "yes", call_id) == (
        "answer_refused",
        "That call waits for output, not approval.",
    )
    assert runner.command("tool_output", "High tide at 6:05.", call_id) is None

    assert (await ended(tab)).status == "completed"
    assert runner.turn_task is None  # not busy any more
    items = [i async for i in Item.objects.filter(session=session).order_by("position")]
    assert [i.kind for i in items] == [
        "message",
        "function_call",
        "function_call_output",
        "message",
    ]
    assert items[0].text == "/lookup the harbour"  # the refused message was never added
    assert items[2].data["output"] == "High tide at 6:05."


async def test_stop_ends_the_run_then_there_is_nothing_to_stop_and_the_rate_applies(
    start_runner: Runners,
    served: StartSimulator,
    upstream_settings: Callable[[Served], Served],
    settings: Any,
) -> None:
    settings.QUOTA_RUNS_PER_MINUTE = 1
    session = await manual_session(served, upstream_settings)
    runner = await start_runner(session)
    tab = Tab()
    runner.attach(tab)

    assert runner.command("send", "/lookup the harbour") is None
    await waiting_call(runner)
    assert runner.command("stop") is None

    ending = await ended(tab)
    assert ending.status == "stopped"
    assert "their calls are answered" in ending.message
    assert len(runner.calls) == 0
    assert runner.command("stop") == ("idle", "Nothing is running.")
    problem = runner.command("send", "/chat 5 again")
    assert problem is not None
    code, text = problem
    assert code == "rate_limited"
    assert "at most 1 runs a minute" in text
    assert text.endswith("send again in 60 s.")
    assert not runner.busy


# -- tabs and idleness ---------------------------------------------------------------------------


async def test_the_runner_closes_once_its_last_tab_is_gone_for_the_idle_grace(
    start_runner: Runners,
) -> None:
    runner = await start_runner(await http_session(), idle_grace=0.05)
    tab = Tab()
    runner.attach(tab)
    await asyncio.sleep(0.1)
    assert not runner.closed  # a tab is there

    runner.detach(tab)
    assert runner.upstream_state == "idle grace"
    await eventually(lambda: runner.closed, within=2)

    assert start_runner.forgotten == [runner]
    assert await leases().holder(runner.session_id) is None  # the lease is free again
    assert runner.upstream_state == "closed"
    assert tab.events == []  # it had left: nothing is sent to it


async def test_a_tab_that_comes_back_within_the_grace_keeps_the_runner(
    start_runner: Runners,
) -> None:
    runner = await start_runner(await http_session(), idle_grace=0.1)
    first, second = Tab(), Tab()
    runner.attach(first)
    runner.detach(first)
    runner.attach(second)
    assert runner.upstream_state != "idle grace"
    await asyncio.sleep(0.25)
    assert not runner.closed


async def test_a_busy_runner_stays_past_the_grace_and_closes_after_its_run(
    start_runner: Runners, served: StartSimulator, upstream_settings: Callable[[Served], Served]
) -> None:
    runner = await start_runner(await manual_session(served, upstream_settings), idle_grace=0.05)
    tab = Tab()
    runner.attach(tab)
    assert runner.command("send", "/lookup the harbour") is None
    call_id = await waiting_call(runner)
    runner.detach(tab)  # the page closed mid-run

    await asyncio.sleep(0.2)
    assert not runner.closed
    assert runner.command("tool_output", "6:05", call_id) is None
    await eventually(lambda: runner.closed, within=5)
    assert not runner.busy


async def test_closing_tells_the_tabs_to_resync_elsewhere(start_runner: Runners) -> None:
    runner = await start_runner(await http_session())
    tabs = [Tab(), Tab()]
    for tab in tabs:
        runner.attach(tab)
    await settle()

    await runner.close("The server running this session changed.")

    assert [tab.events for tab in tabs] == [
        [Resync("The server running this session changed.")]
    ] * 2
    assert runner.listeners == set()
    await runner.close()  # closing twice is harmless
