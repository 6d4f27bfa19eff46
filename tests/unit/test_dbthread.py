"""agents/dbthread.py: callers waiting for the database thread share one trip; each keeps its
own result, exception and cancellation."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from asgiref.sync import sync_to_async

from agents import dbthread

# Each trip may check the thread's database connection (CONN_MAX_AGE, health checks).
pytestmark = pytest.mark.django_db


def double(value: int) -> int:
    return value * 2


def fail(value: int) -> int:
    raise ValueError(f"no {value}")


async def test_callers_waiting_together_share_one_trip_and_keep_their_order() -> None:
    before = dbthread.trips().trips
    results = await asyncio.gather(*(dbthread.call(double, n) for n in range(20)))
    assert results == [n * 2 for n in range(20)]
    assert dbthread.trips().trips - before == 1


async def test_a_caller_alone_makes_its_own_trip() -> None:
    before = dbthread.trips().trips
    for n in range(3):
        assert await dbthread.call(double, n) == n * 2
    assert dbthread.trips().trips - before == 3


async def test_an_exception_is_its_callers_own() -> None:
    outcomes = await asyncio.gather(
        dbthread.call(double, 1),
        dbthread.call(fail, 2),
        dbthread.call(double, 3),
        return_exceptions=True,
    )
    assert outcomes[0] == 2
    assert isinstance(outcomes[1], ValueError)
    assert str(outcomes[1]) == "no 2"
    assert outcomes[2] == 6


async def test_the_work_runs_on_the_database_thread() -> None:
    """The same thread as Django's own ``sync_to_async`` calls: one connection for both."""
    ours = await dbthread.call(threading.get_ident)
    djangos = await sync_to_async(threading.get_ident)()
    assert ours == djangos
    assert ours != threading.get_ident()


async def test_a_cancelled_caller_strands_nobody_and_its_work_is_skipped() -> None:
    ran: list[str] = []

    def slow(name: str) -> str:
        time.sleep(0.2)
        ran.append(name)
        return name

    first = asyncio.create_task(dbthread.call(slow, "first"))
    await asyncio.sleep(0.05)  # the first trip is under way; the next two wait for the next
    cancelled = asyncio.create_task(dbthread.call(slow, "cancelled"))
    last = asyncio.create_task(dbthread.call(slow, "last"))
    await asyncio.sleep(0)
    cancelled.cancel()
    assert await first == "first"
    assert await last == "last"
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert ran == ["first", "last"]
