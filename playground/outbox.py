"""A browser socket's outgoing queue: flow-controlled, coalescing, bounded.

The page acknowledges how many frames it has applied (static/playground.js); the outbox keeps at
most ``ACK_WINDOW`` frames unacknowledged, so a slow tab never makes the server buffer its stream.
While the window is full, text deltas for the same element merge into one fragment, and every
other fragment waits; past ``LIMIT`` fragments or ``LIMIT_BYTES``, the queue is dropped whole
and the socket is told to resync (a fresh snapshot), never silently missing an event. An idle
socket with room in its window sends at once: no delay is added to a token.

Coalescing also adapts to the process's load. The outbox sees how late its own wake-up ran: the
event loop's backlog. Past ``BUSY_LAG`` the process is busy, and a socket that sent a frame
less than ``FRAME_INTERVAL`` ago waits out the interval, merging what arrives meanwhile: a
fast stream costs a busy process ~60 frames a second per socket, not one per token. A quiet
process never waits, and nothing here runs while nothing is sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress

from agents.metrics import OUTBOX_RESYNCS
from agents.run.events import RunEvent, TextDelta
from playground import render
from playground.protocol import ACK_WINDOW

log = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[None]]  # one text frame
LIMIT = 512  # fragments waiting
LIMIT_BYTES = 2 * 1024 * 1024
BUSY_LAG = 0.004  # s an outbox's wake-up ran late: the process is busy
FRAME_INTERVAL = 0.016  # s between a socket's frames while the process is busy


class Outbox:
    def __init__(
        self,
        send: Send,
        overflow: Callable[[], None],
        render_event: Callable[[RunEvent], str] = render.event_html,
    ) -> None:
        self._send = send
        self._overflow = overflow
        self._render_event = render_event  # a viewer's renders no controls
        # (delta key, text parts) for a text delta; (None, [html]) for a ready fragment.
        self._pending: list[tuple[str | None, list[str]]] = []
        self._bytes = 0
        self._held = True  # until the first snapshot is ready
        self._overflowed = False
        self.sent = 0
        self.acknowledged = 0
        self._loop = asyncio.get_running_loop()
        self._woken = 0.0  # when the drain was last woken (loop time)
        self._last_frame = -FRAME_INTERVAL
        self._ready = asyncio.Event()
        self._task = asyncio.create_task(self._drain())

    def hold(self) -> None:
        """Drop what waits and send nothing until :meth:`release` (a snapshot is coming)."""
        self._held = True
        self._pending, self._bytes, self._overflowed = [], 0, False

    def release(self, snapshot: str) -> None:
        """Send ``snapshot`` first, then whatever was queued since :meth:`hold`."""
        self._pending.insert(0, (None, [snapshot]))
        self._held = False
        self._wake()

    def put(self, html: str) -> None:
        self._pending.append((None, [html]))
        self._added(len(html))

    def put_event(self, event: RunEvent) -> None:
        if isinstance(event, TextDelta):
            last = self._pending[-1] if self._pending else None
            if last is not None and last[0] == event.key:
                last[1].append(event.text)
            else:
                self._pending.append((event.key, [event.text]))
            self._added(len(event.text))
        else:
            self.put(self._render_event(event))

    @property
    def backlog(self) -> tuple[int, int]:
        """What waits to be sent: fragments, and characters of text."""
        return len(self._pending), self._bytes

    def acknowledge(self, received: int) -> None:
        if self.acknowledged < received <= self.sent:
            self.acknowledged = received
            self._wake()

    def _added(self, size: int) -> None:
        self._bytes += size
        if (len(self._pending) > LIMIT or self._bytes > LIMIT_BYTES) and not self._overflowed:
            self._overflowed = True
            OUTBOX_RESYNCS.inc()
            self._overflow()
        self._wake()

    def _wake(self) -> None:
        if not self._ready.is_set():
            self._woken = self._loop.time()
            self._ready.set()

    async def _drain(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            if self._held or not self._pending or self.sent - self.acknowledged >= ACK_WINDOW:
                continue
            now = self._loop.time()
            since = now - self._last_frame
            if now - self._woken > BUSY_LAG and since < FRAME_INTERVAL:
                await asyncio.sleep(FRAME_INTERVAL - since)  # busy: merge what comes meanwhile
                self._ready.clear()
                if self._held or not self._pending:
                    continue
            batch, self._pending, self._bytes = self._pending, [], 0
            html = "".join(
                render.text_delta(key, "".join(parts)) if key is not None else parts[0]
                for key, parts in batch
            )
            try:
                await self._send(html)
            except Exception:  # the socket went away; disconnect() closes the outbox
                log.debug("Dropped a fragment for a closed socket", exc_info=True)
                return
            self.sent += 1
            self._last_frame = self._loop.time()
            if self._pending:
                self._wake()

    async def close(self) -> None:
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task
