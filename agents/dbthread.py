"""Work on the database thread, one trip for every caller waiting.

Django's ORM is synchronous, so async code sends it to one thread (``sync_to_async``, thread
sensitive: every call on the same thread and connection). The trip, not the query, is what
costs: handing a call to the thread and its result back is ~0.2 ms of the event loop's core,
several times a short query's own cost. A storm of connects makes two such trips per socket
(authorise it, fence its runner), and measured 0.45 ms of CPU per trip.

:func:`call` queues the work; while a trip is under way the next callers wait together, and the
next trip runs all of them, in arrival order, each on its own (one's exception is its own). So
one caller alone pays one trip, as before, and a crowd shares them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections

from agents.loops import per_loop

Work = tuple[Callable[[], Any], "asyncio.Future[Any]"]
Outcome = tuple[bool, Any]  # (True, result) or (False, the exception it raised)


class Trips:
    """The callers queued on one event loop, and whether a trip is under way."""

    def __init__(self) -> None:
        self.queue: list[Work] = []
        self.running = False
        self.trips = 0  # how many trips were made (tests and the inspector read it)

    async def run(self) -> None:
        try:
            while self.queue:
                batch = [work for work in self.queue if not work[1].done()]  # not cancelled
                self.queue = []
                if not batch:
                    continue
                self.trips += 1
                try:
                    outcomes = await sync_to_async(_run_all)([work for work, _ in batch])
                except BaseException as exc:  # cancelled at shutdown: nobody waits forever
                    for _, future in [*batch, *self.queue]:
                        if isinstance(exc, asyncio.CancelledError):
                            future.cancel()
                        elif not future.done():
                            future.set_exception(exc)
                    self.queue = []
                    raise
                for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                    if future.done():  # its caller was cancelled; the work was done anyway
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        finally:
            self.running = False


CHECK_EVERY = 1.0  # seconds between checks of the thread's connection
_checked = -CHECK_EVERY


def _check_connection() -> None:
    """The thread's connection persists (``CONN_MAX_AGE``): drop it if it broke or aged out, at
    a trip's start, where Channels would make a trip of its own before every socket message.
    At most once a second: on PostgreSQL the check is a query (``CONN_HEALTH_CHECKS``)."""
    global _checked
    now = time.monotonic()
    if now - _checked >= CHECK_EVERY:
        _checked = now
        for connection in connections.all(initialized_only=True):
            # Django's close_old_connections, but never inside a transaction: there it would
            # close the connection under the transaction (a test's, run on this thread).
            if not connection.in_atomic_block:
                connection.close_if_unusable_or_obsolete()


def _run_all(batch: list[Callable[[], Any]]) -> list[Outcome]:
    _check_connection()
    outcomes: list[Outcome] = []
    for work in batch:
        try:
            outcomes.append((True, work()))
        except Exception as exc:
            outcomes.append((False, exc))
    return outcomes


trips = per_loop(Trips)  # this event loop's queue


async def call[T](function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` on the database thread, in a trip shared with the callers waiting."""
    queue = trips()
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    queue.queue.append((partial(function, *args), future))
    if not queue.running:
        queue.running = True
        # A task, not the first caller: a caller cancelled must not strand the others.
        _running.add(task := asyncio.create_task(queue.run()))
        task.add_done_callback(_running.discard)
    return await future


_running: set[asyncio.Task[None]] = set()  # strong references: a pending task is not collected
