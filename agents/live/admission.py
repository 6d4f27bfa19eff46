"""Admission control: under a storm of connects the server gets slower, it does not fail.

daphne refuses a socket still in its handshake after ``--websocket_connect_timeout`` (5 s), and
the handshake of a browser socket waits on the same event loop and database thread as every
other socket's connect work. Unbounded, a thousand simultaneous connects each took their share
of a saturated core, so all of them were late and most were refused. So, per event loop:

- **Connect work** (authorising an accepted socket and sending its snapshot) runs at most
  ``CONNECT_CONCURRENCY`` at a time; the other sockets, already accepted, wait their turn in
  order. Handshakes stay quick, since little else is queued ahead of them.
- **Upstream prewarms** run at most ``PREWARM_CONCURRENCY`` at a time, and only while no connect
  waits for a slot: they are an optimisation, never ahead of a page. Beyond ``PREWARM_BACKLOG``
  waiting, a prewarm is skipped: the session's first step opens its socket with a full create.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

from django.conf import settings

from agents.loops import per_loop


class Gate:
    """At most ``limit`` holders at once; the others wait in arrival order."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._quiet = asyncio.Event()  # set while nobody waits
        self._quiet.set()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self._acquire()
        try:
            yield
        finally:
            self._release()

    async def quiet(self) -> None:
        """Until nobody waits for a slot."""
        await self._quiet.wait()

    async def _acquire(self) -> None:
        if self.active < self.limit and not self._waiters:
            self.active += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._quiet.clear()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed a slot just as it was cancelled: pass it on
            else:
                self._waiters.remove(waiter)
                self._settle()
            raise

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight on: ``active`` stays
                self._settle()
                return
        self.active -= 1
        self._settle()

    def _settle(self) -> None:
        if not self._waiters:
            self._quiet.set()


@dataclass
class Gates:
    connects: Gate = field(default_factory=lambda: Gate(settings.CONNECT_CONCURRENCY))
    prewarms: Gate = field(default_factory=lambda: Gate(settings.PREWARM_CONCURRENCY))


gates = per_loop(Gates)  # this event loop's gates


def connect_slot() -> AbstractAsyncContextManager[None]:
    """Hold one of the ``CONNECT_CONCURRENCY`` slots for a socket's connect work."""
    return gates().connects.slot()


@asynccontextmanager
async def prewarm_slot() -> AsyncIterator[bool]:
    """A slot for an upstream prewarm once no connect waits; False: skip it (too many wait)."""
    current = gates()
    if current.prewarms.waiting >= settings.PREWARM_BACKLOG:
        yield False
        return
    async with current.prewarms.slot():
        await current.connects.quiet()
        yield True


class RunRate:
    """How many runs one session may start a minute (``QUOTA_RUNS_PER_MINUTE``); its runner
    starts every run of the session, so it counts them all."""

    def __init__(self) -> None:
        self._started: deque[float] = deque()  # on the monotonic clock

    def wait(self) -> float:
        """Seconds until the session may start another run (0 when it may now)."""
        now = time.monotonic()
        while self._started and now - self._started[0] >= 60:
            self._started.popleft()
        if len(self._started) < settings.QUOTA_RUNS_PER_MINUTE:
            return 0.0
        return 60 - (now - self._started[0]) if self._started else 60.0

    def started(self) -> None:
        self._started.append(time.monotonic())
