"""The stop signal: how a run ends early, and how work is cut short by it."""

from __future__ import annotations

import asyncio

import pytest

from agents.run.stop import StopSignal
from tests.unit.helpers import settle

pytestmark = pytest.mark.unit


async def test_work_that_finishes_first_is_not_stopped() -> None:
    signal = StopSignal()

    async def work() -> int:
        return 42

    assert await signal.until_stopped(work()) is False
    assert signal.halted() is None


async def test_the_work_s_failure_is_raised() -> None:
    signal = StopSignal()

    async def work() -> None:
        raise ValueError("broken tool")

    with pytest.raises(ValueError, match="broken tool"):
        await signal.until_stopped(work())


async def test_a_halt_cancels_the_work_and_says_how() -> None:
    signal = StopSignal()
    cancelled = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    waiting = asyncio.create_task(signal.until_stopped(work()))
    await settle()
    assert not waiting.done()
    signal.halt("interrupted")

    assert await asyncio.wait_for(waiting, 1) is True
    assert cancelled.is_set()
    assert signal.halted() == "interrupted"
    assert signal.stopping


async def test_a_signal_already_halted_stops_new_work_at_once() -> None:
    signal = StopSignal()
    signal.halt("stopped")

    async def work() -> None:
        await asyncio.sleep(10)

    assert await asyncio.wait_for(signal.until_stopped(work()), 1) is True
    assert signal.halted() == "stopped"


async def test_reset_starts_a_new_run_unhalted() -> None:
    signal = StopSignal()
    signal.halt("stopped")
    signal.reset()
    assert signal.halted() is None
    assert not signal.stopping

    async def work() -> str:
        await asyncio.sleep(0.01)
        return "done"

    assert await signal.until_stopped(work()) is False
