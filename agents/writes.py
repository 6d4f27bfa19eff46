"""Write-behind: a run's records are written in order, in the background.

Persisting a step must overlap with the next upstream request, not delay it. The loop keeps the
context in memory, queues each record here, and waits for the queue only where it must (the end
of a run), so a reload after the run always finds everything.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

Write = Callable[[], Awaitable[Any]]


class WriteBehind:
    def __init__(self) -> None:
        self._tail: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    def submit(self, write: Write) -> None:
        """Queue ``write`` after every write queued before it."""
        self._tail = asyncio.create_task(self._after(self._tail, write))

    async def _after(self, previous: asyncio.Task[None] | None, write: Write) -> None:
        if previous is not None:
            await asyncio.shield(previous)
        if self._error is not None:
            return  # the order is broken: later records would point at missing ones
        try:
            await write()
        except Exception as exc:
            log.exception("A write-behind record failed")
            self._error = exc

    async def flush(self) -> None:
        """Wait for every queued write; raise the first failure, if any."""
        if self._tail is not None:
            await asyncio.shield(self._tail)
        if self._error is not None:
            raise self._error
