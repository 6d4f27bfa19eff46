"""Which process runs a session: a lease with heartbeat and expiry, fenced in the database.

With Redis, every process can take a free lease; the holder renews it while it lives and loses
it when it stops renewing (a crash, a partition, a Redis restart). Each new holder raises the
session's fence in the database, and every write of a run checks it in the same transaction, so
an owner that lost its lease can never write again. Without Redis there is one process and the
lease only keeps its bookkeeping.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.db import connection
from django.db.models import F

from agents import dbthread, statements
from agents.live.store import KEY_PREFIX, redis_client
from agents.loops import per_loop
from agents.metrics import LEASES_HELD
from agents.models import Session
from agents.run import transcript

log = logging.getLogger(__name__)

# Compare-and-set, so a process only ever renews or frees its own lease.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def lease_key(session_id: str) -> str:
    return f"{KEY_PREFIX}{session_id}:lease"


class Leases(Protocol):
    async def acquire(self, session_id: str, holder: str) -> bool: ...

    async def renew(self, session_id: str, holder: str) -> bool: ...

    async def release(self, session_id: str, holder: str) -> None: ...

    async def holder(self, session_id: str) -> str | None: ...


class MemoryLeases:
    def __init__(self) -> None:
        self._holders: dict[str, str] = {}

    async def acquire(self, session_id: str, holder: str) -> bool:
        return self._holders.setdefault(session_id, holder) == holder

    async def renew(self, session_id: str, holder: str) -> bool:
        return self._holders.get(session_id) == holder

    async def release(self, session_id: str, holder: str) -> None:
        if self._holders.get(session_id) == holder:
            del self._holders[session_id]

    async def holder(self, session_id: str) -> str | None:
        return self._holders.get(session_id)


class RedisLeases:
    @property
    def _ttl_ms(self) -> int:
        return int(settings.LEASE_SECONDS * 1000)

    async def acquire(self, session_id: str, holder: str) -> bool:
        redis = redis_client()
        return bool(await redis.set(lease_key(session_id), holder, nx=True, px=self._ttl_ms))

    async def renew(self, session_id: str, holder: str) -> bool:
        redis = redis_client()
        result = await redis.eval(RENEW, 1, lease_key(session_id), holder, self._ttl_ms)
        return bool(result)

    async def release(self, session_id: str, holder: str) -> None:
        await redis_client().eval(RELEASE, 1, lease_key(session_id), holder)

    async def holder(self, session_id: str) -> str | None:
        value = await redis_client().get(lease_key(session_id))
        return str(value) if value is not None else None


_memory = MemoryLeases()


def leases() -> Leases:
    return RedisLeases() if settings.REDIS_URL else _memory


async def raise_fence(session_id: str) -> int:
    """A new holder's fencing token: the session's fence, raised past every earlier holder's."""
    return await dbthread.call(_raise_fence, session_id)  # one trip to the database thread


async def raise_fence_and_base(session_id: str) -> tuple[int, int]:
    """:func:`raise_fence`, and then the position after the session's last item, in one trip
    to the database thread. Once the fence is raised no earlier holder writes an item, so the
    position is final: what recovery starts from."""
    return await dbthread.call(_raise_fence_and_base, session_id)


def _raise_fence_and_base(session_id: str) -> tuple[int, int]:
    if connection.vendor in statements.VENDORS_WITH_RETURNING:
        return statements.raise_fence_and_base(session_id)
    return _raise_fence(session_id), transcript.next_position_now(session_id)


def _raise_fence(session_id: str) -> int:
    Session.objects.filter(pk=session_id).update(fence=F("fence") + 1)
    return Session.objects.only("fence").get(pk=session_id).fence


@dataclass
class Held:
    holder: str
    renewed: Callable[[], None]
    lost: Callable[[], None]
    until: float  # when the last renewal expires (monotonic)


class Renewals:
    """Every lease this process holds, renewed at a third of its life by one task per event
    loop: an idle session costs no timer of its own (a task per session woke a process with
    a thousand sessions 300 times a second). While Redis is away a lease counts as held until
    its last renewal's expiry; then, or once another process holds it, its ``lost`` is called
    and it is dropped. After each renewal its ``renewed`` is called."""

    def __init__(self) -> None:
        self.held: dict[str, Held] = {}
        self._task: asyncio.Task[None] | None = None

    def hold(
        self, session_id: str, holder: str, renewed: Callable[[], None], lost: Callable[[], None]
    ) -> None:
        until = time.monotonic() + settings.LEASE_SECONDS
        if session_id not in self.held:
            LEASES_HELD.inc()
        self.held[session_id] = Held(holder, renewed, lost, until)
        if self._task is None:
            # The process's task, not the session's that started it: an empty context, so its
            # log lines name no session (playground/logging.py's session_context).
            self._task = asyncio.create_task(self._sweep(), context=contextvars.Context())

    def drop(self, session_id: str, holder: str) -> None:
        """Stop renewing ``holder``'s lease of the session (not a later holder's)."""
        held = self.held.get(session_id)
        if held is not None and held.holder == holder:
            del self.held[session_id]
            LEASES_HELD.dec()

    async def _sweep(self) -> None:
        try:
            while self.held:
                await asyncio.sleep(settings.LEASE_SECONDS / 3)
                batch = list(self.held.items())
                await asyncio.gather(*(self._renew(sid, held) for sid, held in batch))
        finally:
            self._task = None

    async def _renew(self, session_id: str, held: Held) -> None:
        try:
            ok = await leases().renew(session_id, held.holder)
        except Exception as exc:
            log.warning("Could not renew the lease of session %s: %s", session_id, exc)
            ok = time.monotonic() < held.until
            if not ok:
                log.warning("Session %s: lease expired while Redis was away", session_id)
        else:
            held.until = time.monotonic() + settings.LEASE_SECONDS
        if self.held.get(session_id) is not held:
            return  # dropped (or held anew) meanwhile
        if not ok:
            self.drop(session_id, held.holder)
            held.lost()
            return
        held.renewed()


renewals = per_loop(Renewals)  # this event loop's renewals
