"""The browser socket's outbox: held until the snapshot, a window of unacknowledged frames,
text deltas coalesced while the window is full, and a resync past its limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from agents.run.events import Notice, RunEvent, TextDelta
from playground import render
from playground.outbox import BUSY_LAG, FRAME_INTERVAL, LIMIT, LIMIT_BYTES, Outbox
from playground.protocol import ACK_WINDOW
from tests.unit.helpers import settle

pytestmark = pytest.mark.unit


class Socket:
    """What the outbox sends to, and how often it overflowed."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.overflows = 0
        self.broken = False

    async def send(self, text_data: str) -> None:
        if self.broken:
            raise ConnectionError("the socket went away")
        self.frames.append(text_data)

    def overflow(self) -> None:
        self.overflows += 1


def plain(event: RunEvent) -> str:
    """A renderer that shows which event it was (the real one is tested in test_render)."""
    assert isinstance(event, Notice)
    return f"<notice>{event.message}</notice>"


@pytest.fixture
def socket() -> Socket:
    return Socket()


@pytest.fixture
async def box(socket: Socket) -> AsyncIterator[Outbox]:
    found = Outbox(socket.send, socket.overflow, plain)
    yield found
    await found.close()


async def fill_window(box: Outbox, socket: Socket) -> None:
    """Send ACK_WINDOW frames that the page does not acknowledge."""
    box.release("snapshot")
    await settle()
    for number in range(1, ACK_WINDOW):
        box.put(f"<p>{number}</p>")
        await settle()
    assert box.sent == ACK_WINDOW
    assert len(socket.frames) == ACK_WINDOW


async def test_nothing_is_sent_before_the_snapshot_then_the_snapshot_goes_first(
    box: Outbox, socket: Socket
) -> None:
    box.put("<p>early</p>")
    box.put_event(TextDelta("k", "tok"))
    await settle()
    assert socket.frames == []

    box.release("<snapshot/>")
    await settle()

    assert socket.frames == ["<snapshot/><p>early</p>" + render.text_delta("k", "tok")]
    assert box.sent == 1


async def test_an_idle_socket_sends_each_fragment_at_once(box: Outbox, socket: Socket) -> None:
    box.release("s")
    await settle()
    box.put("<p>1</p>")
    await settle()
    box.put_event(Notice("hello"))
    await settle()
    assert socket.frames == ["s", "<p>1</p>", "<notice>hello</notice>"]


async def test_a_busy_process_sends_a_socket_one_frame_per_interval_merging_meanwhile(
    box: Outbox, socket: Socket
) -> None:
    """Busy: the outbox's wake-up ran more than BUSY_LAG late. A socket that sent a frame less
    than FRAME_INTERVAL ago then waits out the interval, and the deltas merge."""
    box.release("s")
    await settle()
    box.put_event(TextDelta("m", "a"))
    await settle()
    box.put_event(TextDelta("m", "b"))
    time.sleep(BUSY_LAG * 2)  # noqa: ASYNC251  (the point: the event loop is busy, the wake-up late)
    await settle()
    box.put_event(TextDelta("m", "c"))
    await settle()
    assert socket.frames == ["s", render.text_delta("m", "a")]  # b and c wait
    await asyncio.sleep(FRAME_INTERVAL)
    await settle()
    assert socket.frames == ["s", render.text_delta("m", "a"), render.text_delta("m", "bc")]


async def test_a_quiet_process_sends_a_fast_stream_frame_by_frame(
    box: Outbox, socket: Socket
) -> None:
    box.release("s")
    await settle()
    for text in "abc":
        box.put_event(TextDelta("m", text))
        await settle()
    assert socket.frames == ["s", *(render.text_delta("m", text) for text in "abc")]


async def test_a_full_window_waits_for_an_ack_and_deltas_merge_meanwhile(
    box: Outbox, socket: Socket
) -> None:
    await fill_window(box, socket)

    for text in ("Hel", "lo, ", "world"):
        box.put_event(TextDelta("a", text))
    box.put_event(TextDelta("b", "!"))
    box.put("<hr>")
    box.put_event(TextDelta("b", "?"))  # not merged across another fragment: order is kept
    await settle()
    assert len(socket.frames) == ACK_WINDOW  # nothing more while the window is full
    assert box.backlog == (4, len("Hello, world!") + len("<hr>") + 1)

    box.acknowledge(ACK_WINDOW - 8)  # the page applied some: there is room again
    await settle()

    assert socket.frames[-1] == (
        render.text_delta("a", "Hello, world")
        + render.text_delta("b", "!")
        + "<hr>"
        + render.text_delta("b", "?")
    )
    assert box.backlog == (0, 0)
    assert socket.overflows == 0


async def test_acks_out_of_range_are_ignored(box: Outbox, socket: Socket) -> None:
    await fill_window(box, socket)
    box.acknowledge(ACK_WINDOW + 1)  # more than was sent
    assert box.acknowledged == 0
    box.acknowledge(10)
    box.acknowledge(5)  # going back
    assert box.acknowledged == 10
    box.put("<p>more</p>")
    await settle()
    assert socket.frames[-1] == "<p>more</p>"  # 22 unacknowledged: within the window


async def test_hold_drops_what_waits_and_release_sends_the_new_snapshot_first(
    box: Outbox, socket: Socket
) -> None:
    await fill_window(box, socket)
    box.put("<p>stale</p>")
    box.hold()
    box.put("<p>after</p>")
    box.acknowledge(ACK_WINDOW)
    await settle()
    assert len(socket.frames) == ACK_WINDOW  # held: nothing goes, even with room

    box.release("<fresh/>")
    await settle()

    assert socket.frames[-1] == "<fresh/><p>after</p>"
    assert "stale" not in "".join(socket.frames)


async def test_past_the_fragment_limit_the_socket_is_told_to_resync_once(
    box: Outbox, socket: Socket
) -> None:
    await fill_window(box, socket)
    for number in range(LIMIT):
        box.put(f"<p>{number}</p>")
    assert socket.overflows == 0
    box.put("<p>one too many</p>")
    box.put("<p>and another</p>")
    assert socket.overflows == 1  # once, until the resync's hold

    box.hold()
    box.release("<fresh/>")
    for number in range(LIMIT + 1):
        box.put(f"<p>{number}</p>")
    assert socket.overflows == 2


async def test_deltas_merged_into_one_fragment_count_their_bytes(
    box: Outbox, socket: Socket
) -> None:
    await fill_window(box, socket)
    chunk = "x" * (LIMIT_BYTES // 4)
    for _ in range(4):
        box.put_event(TextDelta("k", chunk))
    assert box.backlog == (1, LIMIT_BYTES)
    assert socket.overflows == 0
    box.put_event(TextDelta("k", "y"))
    assert socket.overflows == 1


async def test_a_socket_that_went_away_stops_the_drain(box: Outbox, socket: Socket) -> None:
    box.release("s")
    await settle()
    socket.broken = True
    box.put("<p>lost</p>")
    await settle()
    socket.broken = False
    box.put("<p>never</p>")
    await settle()
    assert socket.frames == ["s"]
    assert box.sent == 1


async def test_events_other_than_deltas_use_the_renderer_given(socket: Socket) -> None:
    box = Outbox(socket.send, socket.overflow)  # the real renderer by default
    box.release("")
    box.put_event(Notice("<b>hi</b>"))
    await settle()
    await box.close()
    assert socket.frames == [render.notice("<b>hi</b>")]
    assert "&lt;b&gt;hi&lt;/b&gt;" in socket.frames[0]
