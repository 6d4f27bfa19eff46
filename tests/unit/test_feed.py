"""A session's live feed: numbering, the in-flight log and its checkpoints, and its Redis side
(the log other processes resume from, the batches they follow, the lease check)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from channels.layers import get_channel_layer

from agents.live import wire
from agents.live.feed import Feed, Head, Snapshot, batch_events, read_log
from agents.live.lease import RedisLeases
from agents.models import Item
from agents.run.events import ItemDone, ItemStarted, Notice, Resync, RunEvent, TextDelta
from tests.unit.helpers import eventually

pytestmark = pytest.mark.unit


class Listener:
    def __init__(self) -> None:
        self.events: list[RunEvent | Resync] = []

    def deliver(self, event: RunEvent | Resync) -> None:
        self.events.append(event)


def item(position: int, text: str = "done") -> Item:
    data = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text}],
    }
    return Item(position=position, data=data)


def new_feed(seq: int = 0, holder: str | None = None, session_id: str = "s1") -> Feed:
    return Feed(session_id, Head("7", base=3, seq=seq, running=True, turn=2), holder)


# -- in this process -----------------------------------------------------------------------------


def test_events_are_numbered_after_the_head_and_reach_every_listener() -> None:
    feed = new_feed(seq=10)
    first, second = Listener(), Listener()
    feed.listeners |= {first, second}

    feed.publish(ItemStarted("m", "message", "assistant"))
    feed.publish(Notice("hello"))
    feed.publish(TextDelta("m", "Hi"))

    assert feed.seq == 13
    assert (
        first.events
        == second.events
        == [
            ItemStarted("m", "message", "assistant"),
            Notice("hello"),
            TextDelta("m", "Hi"),
        ]
    )
    # A notice is of the moment: it takes a number but the log (what a resync replays) skips it.
    assert [(seq, event) for seq, event in feed.snapshot().events] == [
        (11, ItemStarted("m", "message", "assistant")),
        (13, TextDelta("m", "Hi")),
    ]


def test_the_snapshot_merges_a_reply_s_deltas_under_the_last_number() -> None:
    feed = new_feed()
    feed.publish(ItemStarted("m", "message", "assistant"))
    for text in ("Hel", "lo", " there"):
        feed.publish(TextDelta("m", text))
    feed.publish(ItemStarted("n", "function_call", "lookup"))
    feed.publish(TextDelta("n", "{}"))
    feed.publish(TextDelta("m", "!"))  # another element came between: not merged

    snap = feed.snapshot()

    assert snap.events == [
        (1, ItemStarted("m", "message", "assistant")),
        (4, TextDelta("m", "Hello there")),
        (5, ItemStarted("n", "function_call", "lookup")),
        (6, TextDelta("n", "{}")),
        (7, TextDelta("m", "!")),
    ]
    assert snap.seq == 7
    # Later deltas do not change a snapshot already taken.
    feed.publish(TextDelta("m", " more"))
    assert snap.events[-1] == (7, TextDelta("m", "!"))


def test_a_checkpoint_drops_the_events_it_accounts_for_and_moves_the_head() -> None:
    feed = new_feed()
    feed.publish(ItemStarted("m", "message", "assistant"))
    feed.publish(TextDelta("m", "a"))
    feed.publish(ItemDone("m", item(3)))
    feed.publish(ItemStarted("k", "message", "assistant"))

    feed.checkpoint(base=4, seq=3, running=True, turn=2)

    snap = feed.snapshot()
    assert snap.head == Head("7", 4, 3, True, 2)
    assert snap.events == [(4, ItemStarted("k", "message", "assistant"))]
    assert feed.seq == 4  # numbering goes on
    feed.checkpoint(base=5, seq=feed.seq, running=False)
    assert feed.snapshot().events == []
    assert feed.snapshot().seq == 4  # the head's number when the log is empty


def test_a_snapshot_s_head_is_a_copy() -> None:
    feed = new_feed()
    snap = feed.snapshot()
    assert snap.head is not None
    snap.head.base = 99
    assert feed.head.base == 3


def test_a_snapshot_without_a_head_starts_at_zero() -> None:
    assert Snapshot(None).seq == 0


def test_a_head_round_trips_through_its_text() -> None:
    head = Head("12", 40, 123, True, 38)
    assert Head.loads(head.dumps()) == head
    assert Head.loads(Head("1", 0, 0, False, None).dumps()).turn is None


async def test_without_redis_starting_and_closing_touch_nothing() -> None:
    feed = new_feed()
    assert feed.relay is None
    lost: list[bool] = []
    await feed.start(lambda: lost.append(True))
    feed.publish(TextDelta("m", "x"))
    await feed.close()
    assert lost == []


# -- with Redis ----------------------------------------------------------------------------------


async def owned_feed(session_id: str, holder: str = "mailbox-1 abc") -> tuple[Feed, list[str]]:
    """A started feed whose runner holds the session's lease; what its on_lost was told."""
    assert await RedisLeases().acquire(session_id, holder)
    feed = new_feed(seq=5, holder=holder, session_id=session_id)
    lost: list[str] = []
    await feed.start(lambda: lost.append("lost"))
    return feed, lost


async def test_the_redis_log_is_what_a_tab_elsewhere_resumes_from(
    redis_on: Callable[[], str],
) -> None:
    sid = redis_on()
    assert (await read_log(sid)).head is None  # no log yet: render the database as it is

    feed, lost = await owned_feed(sid)
    feed.publish(ItemStarted("m", "message", "assistant"))
    for text in ("a", "b", "c"):
        feed.publish(TextDelta("m", text))
    await feed.close()  # flushes the last batch

    snap = await read_log(sid)
    assert snap.head == Head("7", 3, 5, True, 2)
    assert snap.events == [
        (6, ItemStarted("m", "message", "assistant")),
        (9, TextDelta("m", "abc")),
    ]
    assert snap.events == feed.snapshot().events  # what a tab here would replay
    assert lost == []


async def test_a_tab_elsewhere_replays_what_a_tab_here_would_no_stale_notice(
    redis_on: Callable[[], str],
) -> None:
    sid = redis_on()
    feed, _ = await owned_feed(sid)
    feed.publish(ItemStarted("m", "message", "assistant"))
    feed.publish(Notice("Falling back to HTTP for this session."))
    feed.publish(TextDelta("m", "a"))
    await feed.close()

    assert (await read_log(sid)).events == feed.snapshot().events


async def test_a_checkpoint_in_redis_trims_the_log_and_moves_the_head(
    redis_on: Callable[[], str],
) -> None:
    sid = redis_on()
    feed, _ = await owned_feed(sid)
    feed.publish(ItemStarted("m", "message", "assistant"))
    feed.publish(ItemDone("m", item(3, "hi")))
    feed.checkpoint(base=4, seq=feed.seq, running=False)
    feed.publish(ItemStarted("n", "message", "assistant"))
    await feed.close()

    snap = await read_log(sid)
    assert snap.head == Head("7", 4, 7, False, None)
    assert snap.events == [(8, ItemStarted("n", "message", "assistant"))]


async def test_a_new_runner_replaces_the_log_an_earlier_one_left(
    redis_on: Callable[[], str],
) -> None:
    sid = redis_on()
    feed, _ = await owned_feed(sid)
    feed.publish(ItemStarted("m", "message", "assistant"))
    await feed.close()
    await RedisLeases().release(sid, "mailbox-1 abc")

    later = Feed(sid, Head("8", 9, 0, False, None), "mailbox-2 def")
    assert await RedisLeases().acquire(sid, "mailbox-2 def")
    await later.start(lambda: None)
    await later.close()

    snap = await read_log(sid)
    assert snap.head == Head("8", 9, 0, False, None)
    assert snap.events == []


async def test_batches_reach_the_session_group_coalesced_and_numbered(
    redis_on: Callable[[], str], settings: Any
) -> None:
    settings.FANOUT_INTERVAL_MS = 50
    sid = redis_on()
    layer = get_channel_layer()
    assert layer is not None
    channel = await layer.new_channel()
    await layer.group_add(wire.feed_group(sid), channel)
    try:
        feed, _ = await owned_feed(sid)
        feed.publish(ItemStarted("m", "message", "assistant"))
        first: dict[str, Any] = await asyncio.wait_for(layer.receive(channel), 2)
        for text in ("x", "y", "z"):  # within one interval: one batch
            feed.publish(TextDelta("m", text))
        second: dict[str, Any] = await asyncio.wait_for(layer.receive(channel), 2)
        await feed.close()
    finally:
        await layer.group_discard(wire.feed_group(sid), channel)

    assert (first["type"], first["epoch"], first["after"]) == (wire.FEED_BATCH, "7", 5)
    assert batch_events(first) == [(6, ItemStarted("m", "message", "assistant"))]  # type: ignore[arg-type]
    assert second["after"] == 6  # follows on from the first: a follower sees no gap
    assert batch_events(second) == [(9, TextDelta("m", "xyz"))]  # type: ignore[arg-type]


async def test_a_runner_that_lost_its_lease_cannot_write_the_log(
    redis_on: Callable[[], str],
) -> None:
    sid = redis_on()
    feed, lost = await owned_feed(sid)
    await RedisLeases().release(sid, "mailbox-1 abc")
    assert await RedisLeases().acquire(sid, "mailbox-9 other")

    feed.publish(ItemStarted("m", "message", "assistant"))
    await eventually(lambda: lost == ["lost"], within=2)
    await feed.close()

    snap = await read_log(sid)
    assert snap.events == []  # nothing of the old runner's reached the log
