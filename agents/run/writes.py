"""Write-behind: a run's records are written in order, in the background, in few transactions.

Persisting a step must overlap with the next upstream request, not delay it. The loop keeps the
context in memory and queues each record here; whatever queued up while the previous batch was
being written goes to the database as one transaction. That transaction first checks the
session's fence (agents/live/lease.py), so a runner that lost its session can never write again.
Callbacks queued with :meth:`WriteBehind.then` run once everything queued before them is durable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from django.db import transaction

from agents import dbthread
from agents.models import Session

log = logging.getLogger(__name__)

Write = Callable[[], object]  # runs in the database thread
Callback = Callable[[], None]  # runs in the event loop


class Fenced(Exception):
    """Another process took the session over: this runner must not write."""


class WriteBehind:
    def __init__(self, session_id: str, fence: int | None = None) -> None:
        self.session_id = session_id
        self.fence = fence
        self._queue: list[tuple[Write | None, Callback | None]] = []
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    def submit(self, write: Write) -> None:
        """Queue ``write`` (a synchronous ORM call) after every write queued before it."""
        self._queue.append((write, None))
        self._wake()

    def then(self, callback: Callback) -> None:
        """Call ``callback`` once every write queued so far is committed (never if one failed)."""
        self._queue.append((None, callback))
        self._wake()

    async def flush(self) -> None:
        """Wait for every queued write; raise the first failure, if any."""
        while self._task is not None:
            await asyncio.shield(self._task)
        if self._error is not None:
            raise self._error

    def _wake(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                if self._error is not None:
                    continue  # the order is broken: later records would point at missing ones
                writes = [write for write, _ in batch if write is not None]
                try:
                    if writes:
                        await dbthread.call(self._commit, writes)  # with other callers' work
                except Exception as exc:
                    if not isinstance(exc, Fenced):
                        log.exception("A write-behind batch failed")
                    self._error = exc
                    continue
                for _, callback in batch:
                    if callback is not None:
                        callback()
        finally:
            self._task = None

    def commit_now(self, writes: list[Write]) -> None:
        """Commit ``writes`` in one fenced transaction, now (on the database thread): for work
        already on that thread, while nothing is queued; else :meth:`submit` them."""
        if self._queue or self._task is not None:
            raise RuntimeError("Writes are queued: commit_now would overtake them.")
        self._commit(writes)

    def _commit(self, writes: list[Write]) -> None:
        with transaction.atomic():
            if self.fence is not None:
                # Also locks the session's row: a takeover waits for this batch, then fences it.
                held = Session.objects.filter(pk=self.session_id, fence=self.fence)
                if not held.update(fence=self.fence):
                    raise Fenced(f"Session {self.session_id} is run by another process now.")
            for write in writes:
                write()
