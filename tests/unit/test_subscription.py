"""A socket's subscription: a snapshot, then every later event exactly once, from the runner
here or from another process's feed (its batches, numbered by epoch and sequence); commands
go to the runner, here or through the mailbox of the process that holds the lease."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from channels.layers import get_channel_layer

from agents.live import subscription as subscription_module
from agents.live import wire
from agents.live.feed import Feed, Head, Snapshot
from agents.live.lease import RedisLeases
from agents.live.registry import FOLLOWED, RUNNERS
from agents.live.runner import Problem, SessionRunner
from agents.live.subscription import NO_REPLY, NO_RUNNER, Subscription
from agents.models import Session
from agents.run.events import ItemStarted, Notice, RunEvent, TextDelta, encode
from tests.unit.helpers import eventually, settle

pytestmark = pytest.mark.unit

EPOCH = "5"


class View:
    """What the subscription shows to: everything it was asked to do, in order."""

    channel_name = "unit-view-channel"

    def __init__(self) -> None:
        self.log: list[Any] = []  # "hold", "join", "render", "show …" and each event put
        self.snapshots: list[Snapshot] = []
        self.refusals: list[Problem] = []
        self.gate: asyncio.Event | None = None  # when set: render waits for it
        self.failures = 0
        self.unfollowed = False

    async def join(self) -> None:
        self.log.append("join")

    async def unfollow(self) -> None:
        self.unfollowed = True  # not in the log: the order of what the page sees is unchanged

    def hold(self) -> None:
        self.log.append("hold")

    async def render(self, snap: Snapshot) -> str:
        self.log.append("render")
        self.snapshots.append(snap)
        if self.gate is not None:
            await self.gate.wait()
        return f"show {snap.head.epoch if snap.head else None}@{snap.seq}"

    def show(self, snapshot_html: str) -> None:
        self.log.append(snapshot_html)

    def put(self, event: RunEvent) -> None:
        self.log.append(event)

    def refused(self, problem: Problem) -> None:
        self.refusals.append(problem)

    async def failed(self) -> None:
        self.failures += 1

    @property
    def shown(self) -> list[Any]:
        """What followed the last snapshot shown."""
        last = max(i for i, entry in enumerate(self.log) if str(entry).startswith("show"))
        return self.log[last + 1 :]

    def renders(self) -> int:
        return self.log.count("render")


def batch(after: int, *events: tuple[int, RunEvent], epoch: str = EPOCH) -> wire.FeedBatch:
    encoded = [(seq, encode(event)) for seq, event in events]
    return {"type": wire.FEED_BATCH, "epoch": epoch, "after": after, "events": encoded}


# -- following another process's feed (Redis) ---------------------------------------------------


class Elsewhere:
    """The session's runner on another process: its lease, its log, its mailbox channel."""

    def __init__(self, session_id: str, mailbox: str) -> None:
        self.session_id = session_id
        self.holder = f"{mailbox} owner"
        self.mailbox = mailbox

    async def start(self) -> None:
        assert await RedisLeases().acquire(self.session_id, self.holder)
        await self.write_log()

    async def write_log(self) -> None:
        feed = Feed(self.session_id, Head(EPOCH, 0, 10, True, 0), self.holder)
        await feed.start(lambda: None)
        feed.publish(ItemStarted("m", "message", "assistant"))  # 11
        feed.publish(TextDelta("m", "Hel"))  # 12
        feed.publish(TextDelta("m", "lo"))  # 13
        await feed.close()


@pytest.fixture
async def elsewhere(redis_on: Callable[[], str]) -> Elsewhere:
    layer = get_channel_layer()
    assert layer is not None
    owner = Elsewhere(redis_on(), await layer.new_channel())
    await owner.start()
    return owner


@pytest.fixture
async def following(elsewhere: Elsewhere) -> AsyncIterator[tuple[Subscription, View]]:
    view = View()
    sub = Subscription(elsewhere.session_id, view)
    await sub.sync()
    yield sub, view
    sub.close()
    assert elsewhere.session_id not in FOLLOWED  # the follower left with its last socket


async def test_the_snapshot_is_the_owner_s_log_then_batches_follow_on(
    following: tuple[Subscription, View],
) -> None:
    sub, view = following
    assert sub.runner is None
    assert not view.unfollowed  # in the feed's group: the batches are how it follows
    assert view.log == ["hold", "join", "render", "show 5@13"]
    assert view.snapshots[0].events == [
        (11, ItemStarted("m", "message", "assistant")),
        (13, TextDelta("m", "Hello")),
    ]
    assert (sub.epoch, sub.seq) == (EPOCH, 13)

    sub.batch(batch(13, (14, TextDelta("m", "!")), (15, Notice("n"))))
    # A batch that straddles what was applied: only its new events count.
    sub.batch(batch(14, (15, Notice("n")), (16, TextDelta("m", "?"))))
    sub.batch(batch(12, (13, TextDelta("m", "lo"))))  # old news: skipped

    assert view.shown == [TextDelta("m", "!"), Notice("n"), TextDelta("m", "?")]
    assert sub.seq == 16
    assert view.renders() == 1


@pytest.mark.parametrize(
    "message",
    [
        batch(13, (14, TextDelta("m", "!")), epoch="6"),  # a new owner
        batch(14, (15, TextDelta("m", "!"))),  # event 14 was lost on the way
    ],
    ids=["another-epoch", "a-gap"],
)
async def test_a_batch_from_another_epoch_or_after_a_gap_means_a_fresh_snapshot(
    following: tuple[Subscription, View], message: wire.FeedBatch
) -> None:
    sub, view = following

    sub.batch(message)
    await eventually(lambda: view.renders() == 2, within=2)
    await settle()

    assert TextDelta("m", "!") not in view.log  # never applied out of order
    assert view.log[4:] == ["hold", "join", "render", "show 5@13"]
    assert sub.seq == 13


async def test_a_batch_after_a_sync_that_found_no_log_brings_a_fresh_snapshot(
    redis_on: Callable[[], str],
) -> None:
    """The owner held the lease but had not written its log yet when this socket synced (as
    after a Redis restart, issue 12): its batches must bring a snapshot, not be dropped for
    good, which left the tab deaf to every later run."""
    owner = Elsewhere(redis_on(), "unit-mailbox")
    assert await RedisLeases().acquire(owner.session_id, owner.holder)
    view = View()
    sub = Subscription(owner.session_id, view)
    try:
        await sub.sync()
        assert (sub.runner, sub.epoch) == (None, None)
        assert view.log == ["hold", "join", "render", "show None@0"]

        await owner.write_log()
        sub.batch(batch(13, (14, TextDelta("m", "!"))))
        await eventually(lambda: view.log[-1] == "show 5@13", within=2)
        assert (sub.epoch, sub.seq) == (EPOCH, 13)
        sub.batch(batch(13, (14, TextDelta("m", "!"))))
        assert view.shown == [TextDelta("m", "!")]
    finally:
        sub.close()


async def test_batches_that_come_during_a_sync_are_applied_after_its_snapshot(
    elsewhere: Elsewhere,
) -> None:
    view = View()
    view.gate = asyncio.Event()
    sub = Subscription(elsewhere.session_id, view)
    syncing = asyncio.create_task(sub.sync())
    try:
        await eventually(lambda: "render" in view.log, within=2)
        sub.batch(batch(12, (13, TextDelta("m", "lo")), (14, TextDelta("m", "!"))))
        sub.batch(batch(14, (15, Notice("n"))))
        assert view.log == ["hold", "join", "render"]  # nothing before the snapshot

        view.gate.set()
        await syncing
    finally:
        sub.close()

    assert view.log[3:] == ["show 5@13", TextDelta("m", "!"), Notice("n")]


async def test_a_command_goes_to_the_owner_s_mailbox_and_its_reply_is_awaited(
    following: tuple[Subscription, View], elsewhere: Elsewhere, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subscription_module, "REPLY_TIMEOUT", 0.05)
    sub, view = following
    layer = get_channel_layer()
    assert layer is not None

    await sub.command("tool_output", "42", "call_1")
    sent = await asyncio.wait_for(layer.receive(elsewhere.mailbox), 1)
    assert sent == {
        "type": wire.RUNNER_COMMAND,
        "session": elsewhere.session_id,
        "action": "tool_output",
        "reply_to": View.channel_name,
        "message": "42",
        "target": "call_1",
    }
    sub.reply({"type": wire.RUNNER_REPLY, "problem": None})  # done: nothing to say
    await asyncio.sleep(0.1)
    assert view.refusals == []

    await sub.command("stop")
    sub.reply({"type": wire.RUNNER_REPLY, "problem": ["idle", "Nothing is running."]})
    assert view.refusals == [("idle", "Nothing is running.")]


async def test_a_command_nobody_answers_is_refused_after_the_timeout(
    following: tuple[Subscription, View], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subscription_module, "REPLY_TIMEOUT", 0.05)
    sub, view = following

    await sub.command("stop")
    await asyncio.sleep(0.01)
    assert view.refusals == []
    await eventually(lambda: bool(view.refusals), within=1)

    assert view.refusals == [NO_REPLY]


async def test_a_command_when_no_process_runs_the_session_is_refused_and_resyncs(
    following: tuple[Subscription, View], elsewhere: Elsewhere
) -> None:
    sub, view = following
    await RedisLeases().release(elsewhere.session_id, elsewhere.holder)

    await sub.command("send", "hello")

    assert view.refusals == [NO_RUNNER]
    assert sub._resync_task is not None  # "moved": the socket syncs again (and claims it)


# -- the runner in this process ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("runners")
async def test_with_the_runner_here_commands_go_to_it_and_its_events_come_at_once() -> None:
    session = await Session.objects.acreate(model="sim", transport="http")
    sid = str(session.pk)
    view = View()
    sub = Subscription(sid, view)
    try:
        await sub.sync()
        runner = RUNNERS[sid]
        assert sub.runner is runner
        assert sub in runner.listeners
        assert view.unfollowed  # out of the feed's group: its process gets no batches for it
        head = view.snapshots[0].head
        assert head is not None
        assert head.epoch == str(runner.fence)

        await sub.command("stop")
        assert view.refusals == [("idle", "Nothing is running.")]
        runner.publish(Notice("hello"))
        assert view.shown == [Notice("hello")]
        sub.batch(batch(0, (1, Notice("from elsewhere"))))  # not following a feed: ignored
        assert view.shown == [Notice("hello")]

        # The runner closes (its lease lost): the socket syncs again, with a new runner.
        await runner.close("The server running this session changed.")
        await eventually(lambda: view.renders() == 2, within=5)
        await settle()
        assert sub.runner is RUNNERS[sid]
        assert sub.runner is not runner
        assert view.snapshots[1].head is not None
        assert int(view.snapshots[1].head.epoch) > int(head.epoch)  # a new epoch
    finally:
        sub.close()
    current: SessionRunner = RUNNERS[sid]
    assert sub not in current.listeners
