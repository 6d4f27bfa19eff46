"""Tabs in this process on a session another process runs.

A follower keeps the owner from closing for idleness (a presence key in Redis), and takes the
session over when the owner's lease expires; when the owner changes, its tabs resync.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress

from django.conf import settings

from agents.live import local
from agents.live.inspection import report_tabs
from agents.live.lease import leases
from agents.live.store import redis_client
from agents.run.events import Listener, Resync

log = logging.getLogger(__name__)


class Follower:
    def __init__(
        self,
        session_id: str,
        holder: str | None,
        *,
        claim: Callable[[str], Awaitable[object | None]],
        forget: Callable[[Follower], None],
    ) -> None:
        self.session_id = session_id
        self.listeners: set[Listener] = set()
        self.holder = holder  # the owner's lease value, read before the tabs read its log
        self.claim = claim  # starts a runner here if no process holds the lease
        self.forget = forget
        self._woken = asyncio.Event()
        self._task = asyncio.create_task(self._watch())

    def wake(self) -> None:
        """The owner left (wire.OwnerLeft): look at the lease now."""
        self._woken.set()

    def stop(self) -> None:
        self._task.cancel()
        self.forget(self)

    def report(self) -> None:
        """This process's sockets on the session, for the inspector (in the background)."""
        local.keep(asyncio.create_task(report_tabs(self.session_id, set(self.listeners))))

    async def _watch(self) -> None:
        interval = settings.LEASE_SECONDS / 3
        while True:
            with suppress(TimeoutError):  # a beat, or the owner saying it left
                await asyncio.wait_for(self._woken.wait(), interval)
            self._woken.clear()
            try:
                redis = redis_client()
                await redis.set(local.presence_key(self.session_id), "1", px=int(interval * 3000))
                await report_tabs(self.session_id, set(self.listeners))
                holder = await leases().holder(self.session_id)
                if holder is None:
                    runner = await self.claim(self.session_id)
                    if runner is not None:
                        self._hand_over("This server now runs the session.")
                        return
                if holder != self.holder:
                    # A new owner: its batches may not reach us (a restarted Redis forgets
                    # group memberships), so the tabs sync with it now rather than wait.
                    self._hand_over("Another server now runs the session.")
                    return
            except Exception as exc:  # Redis is away: try again at the next beat
                log.warning("Following session %s: %s", self.session_id, exc)

    def _hand_over(self, reason: str) -> None:
        self.stop()
        for listener in list(self.listeners):
            listener.deliver(Resync(reason))
