"""How a run ends early: stopped by a person, or interrupted because its process lost the session.

The agent loop only reads this signal (agents/run/loop.py); the runner raises it
(agents/live/runner.py). The Responses protocol has no cancel event, so raising it also means
the transport's socket is dropped: the runner does that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from contextlib import suppress
from typing import Any


class StopSignal:
    def __init__(self) -> None:
        self.stopping = False
        # What a halted run's partial items become: stopped by a person, or interrupted.
        self.status = "stopped"
        self._event = asyncio.Event()

    def reset(self) -> None:
        """A new run starts: nothing is halted."""
        self.stopping = False
        self._event.clear()

    def halt(self, status: str) -> None:
        self.stopping = True
        self.status = status
        self._event.set()

    def halted(self) -> str | None:
        """How the current run was halted (stopped, interrupted), if it was."""
        return self.status if self.stopping else None

    async def until_stopped(self, work: Awaitable[Any]) -> bool:
        """Wait for ``work``; True (and the work cancelled) if the run is halted first."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self._event.wait())
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if task.done():
            task.result()
            return False
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        return True
