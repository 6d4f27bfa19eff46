"""Admission control (agents/live/admission.py): bounded connect work, prewarms behind connects."""

from __future__ import annotations

import asyncio
from typing import Any

from agents.live import admission
from agents.live.admission import Gate


async def test_a_gate_admits_its_limit_and_the_others_in_arrival_order() -> None:
    gate = Gate(2)
    order: list[int] = []
    release = asyncio.Event()

    async def work(number: int) -> None:
        async with gate.slot():
            order.append(number)
            await release.wait()

    tasks = [asyncio.create_task(work(number)) for number in range(5)]
    await asyncio.sleep(0.01)
    assert order == [0, 1]
    assert (gate.active, gate.waiting) == (2, 3)
    release.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert (gate.active, gate.waiting) == (0, 0)


async def test_a_waiter_cancelled_in_the_queue_gives_up_its_place() -> None:
    gate = Gate(1)
    held = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with gate.slot():
            held.set()
            await release.wait()

    first = asyncio.create_task(holder())
    await held.wait()
    waiting = asyncio.create_task(gate.slot().__aenter__())
    await asyncio.sleep(0.01)
    assert gate.waiting == 1
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert gate.waiting == 0
    release.set()
    await first
    assert gate.active == 0


async def test_prewarms_wait_while_a_connect_waits(settings: Any) -> None:
    settings.CONNECT_CONCURRENCY = 1
    settings.PREWARM_CONCURRENCY = 4
    settings.PREWARM_BACKLOG = 100
    release = asyncio.Event()
    events: list[str] = []

    async def connect(name: str) -> None:
        async with admission.connect_slot():
            events.append(name)
            await release.wait()

    async def prewarm() -> None:
        async with admission.prewarm_slot() as admitted:
            assert admitted
            events.append("prewarm")

    connects = [asyncio.create_task(connect(f"connect {n}")) for n in range(2)]
    await asyncio.sleep(0.01)
    warming = asyncio.create_task(prewarm())
    await asyncio.sleep(0.01)
    assert events == ["connect 0"]  # the second connect waits, so the prewarm does too
    release.set()
    await asyncio.gather(*connects, warming)
    assert events == ["connect 0", "connect 1", "prewarm"]


async def test_beyond_the_backlog_a_prewarm_is_skipped(settings: Any) -> None:
    settings.CONNECT_CONCURRENCY = 1
    settings.PREWARM_CONCURRENCY = 1
    settings.PREWARM_BACKLOG = 1
    release = asyncio.Event()
    admitted: list[bool] = []

    async def prewarm() -> None:
        async with admission.prewarm_slot() as ok:
            admitted.append(ok)
            if ok:
                await release.wait()

    running = asyncio.create_task(prewarm())
    await asyncio.sleep(0.01)
    queued = asyncio.create_task(prewarm())
    await asyncio.sleep(0.01)
    await prewarm()  # one runs, one waits: this one is skipped at once
    assert admitted == [True, False]
    release.set()
    await asyncio.gather(running, queued)
    assert admitted == [True, False, True]
