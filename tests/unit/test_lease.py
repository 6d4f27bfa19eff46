"""Leases: acquire, renew and release are compare-and-set, in memory and in Redis; the
heartbeat calls ``lost`` when the lease cannot be kept; a new holder raises the fence."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from agents.live import lease
from agents.live.lease import (
    Leases,
    MemoryLeases,
    RedisLeases,
    lease_key,
    leases,
    raise_fence,
    raise_fence_and_base,
    renewals,
)
from agents.live.store import redis_client
from agents.models import Session
from agents.run import transcript
from tests.unit.helpers import eventually

pytestmark = pytest.mark.unit


async def check_compare_and_set(store: Leases, sid: str) -> None:
    assert await store.holder(sid) is None
    assert await store.acquire(sid, "a")
    assert not await store.acquire(sid, "b")  # taken
    assert await store.holder(sid) == "a"
    assert await store.renew(sid, "a")
    assert not await store.renew(sid, "b")  # only the holder renews
    await store.release(sid, "b")  # only the holder frees it
    assert await store.holder(sid) == "a"
    await store.release(sid, "a")
    assert await store.holder(sid) is None
    assert not await store.renew(sid, "a")  # a freed lease is not renewed back
    assert await store.acquire(sid, "b")
    assert await store.holder(sid) == "b"
    await store.release(sid, "b")


async def test_memory_leases_are_compare_and_set() -> None:
    await check_compare_and_set(MemoryLeases(), "s1")


async def test_redis_leases_are_compare_and_set(redis_on: Callable[[], str]) -> None:
    await check_compare_and_set(RedisLeases(), redis_on())


async def test_a_redis_lease_expires_unless_renewed(
    redis_on: Callable[[], str], settings: Any
) -> None:
    sid = redis_on()
    store = RedisLeases()
    settings.LEASE_SECONDS = 5
    assert await store.acquire(sid, "a")
    ttl = await redis_client().pttl(lease_key(sid))
    assert 4000 < ttl <= 5000
    settings.LEASE_SECONDS = 60
    assert await store.renew(sid, "a")  # a renewal extends it to a full lease again
    assert await redis_client().pttl(lease_key(sid)) > 50_000

    settings.LEASE_SECONDS = 0.05
    assert await store.renew(sid, "a")
    await asyncio.sleep(0.1)
    assert await store.holder(sid) is None  # expired: another process may take it
    assert await store.acquire(sid, "b")


def test_the_leases_follow_redis_url(settings: Any) -> None:
    settings.REDIS_URL = ""
    assert isinstance(leases(), MemoryLeases)
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    assert isinstance(leases(), RedisLeases)


# -- the heartbeat -------------------------------------------------------------------------------


class Beats:
    def __init__(self) -> None:
        self.renewed = 0
        self.lost_at: float | None = None

    def renew(self) -> None:
        self.renewed += 1

    def lost(self) -> None:
        self.lost_at = asyncio.get_running_loop().time()


class RedisAway(MemoryLeases):
    """Leases whose store stopped answering: every renewal raises."""

    async def renew(self, session_id: str, holder: str) -> bool:
        raise ConnectionError("Redis is away")


def use_leases(monkeypatch: pytest.MonkeyPatch, store: Leases) -> None:
    monkeypatch.setattr(lease, "leases", lambda: store)


async def test_the_heartbeat_renews_until_the_lease_is_gone(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.LEASE_SECONDS = 0.06  # a beat every 20 ms
    store = MemoryLeases()
    use_leases(monkeypatch, store)
    assert await store.acquire("s1", "me")
    beats = Beats()
    renewals().hold("s1", "me", beats.renew, beats.lost)

    await eventually(lambda: beats.renewed >= 3, within=2)
    assert beats.lost_at is None
    await store.release("s1", "me")
    await store.acquire("s1", "someone else")  # taken over
    await eventually(lambda: beats.lost_at is not None, within=1)
    assert "s1" not in renewals().held  # no longer renewed


async def test_while_redis_is_away_the_lease_counts_as_held_until_it_expires(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.LEASE_SECONDS = 0.3  # a beat every 100 ms
    use_leases(monkeypatch, RedisAway())
    beats = Beats()
    started = asyncio.get_running_loop().time()
    renewals().hold("s1", "me", beats.renew, beats.lost)

    await eventually(lambda: beats.lost_at is not None, within=2)

    assert beats.lost_at is not None
    # Not before the last renewal's expiry (a lease lasts 0.3 s), but at the first beat after.
    assert 0.3 <= beats.lost_at - started < 1.0
    assert beats.renewed >= 1  # the beats before expiry still count as held


async def test_a_lost_lease_is_noticed_at_the_first_beat(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.LEASE_SECONDS = 0.06
    use_leases(monkeypatch, MemoryLeases())  # never acquired: the renewal fails
    beats = Beats()
    renewals().hold("s1", "me", beats.renew, beats.lost)
    await eventually(lambda: beats.lost_at is not None, within=1)
    assert beats.renewed == 0


def sweeps() -> list[asyncio.Task[object]]:
    """The event loop's tasks that renew leases (other tests' clients may still be closing)."""
    named = ((task, getattr(task.get_coro(), "__qualname__", "")) for task in asyncio.all_tasks())
    return [task for task, name in named if name == "Renewals._sweep"]


async def test_a_thousand_leases_are_renewed_by_one_task(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Idle sessions cost no timer each: one task renews every lease of the event loop, and
    stops once none is held."""
    settings.LEASE_SECONDS = 0.06
    store = MemoryLeases()
    use_leases(monkeypatch, store)
    beats = [Beats() for _ in range(1000)]
    for number, beat in enumerate(beats):
        assert await store.acquire(f"s{number}", "me")
        renewals().hold(f"s{number}", "me", beat.renew, beat.lost)
    assert len(sweeps()) == 1
    await eventually(lambda: all(beat.renewed >= 2 for beat in beats), within=2)
    for number in range(1000):
        renewals().drop(f"s{number}", "me")
    await eventually(lambda: not sweeps(), within=1)
    assert not any(beat.lost_at for beat in beats)


async def test_a_later_holder_is_not_dropped_by_an_earlier_one() -> None:
    beats = Beats()
    renewals().hold("s1", "new", beats.renew, beats.lost)
    renewals().drop("s1", "old")  # the runner before it closing late
    assert renewals().held["s1"].holder == "new"
    renewals().drop("s1", "new")


# -- the fence -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_each_new_holder_raises_the_fence_and_learns_where_the_transcript_ends() -> None:
    session = await Session.objects.acreate(model="sim")
    sid = str(session.pk)
    assert await raise_fence_and_base(sid) == (1, 0)  # no items yet
    for position in range(3):
        await transcript.append(session, position, transcript.user_message(f"m{position}"))
    assert await raise_fence_and_base(sid) == (2, 3)
    assert await raise_fence(sid) == 3
    assert (await Session.objects.aget(pk=sid)).fence == 3


@pytest.mark.django_db(transaction=True)
async def test_raising_the_fence_of_a_missing_session_raises() -> None:
    with pytest.raises(Session.DoesNotExist):
        await raise_fence_and_base("00000000-0000-0000-0000-000000000000")
