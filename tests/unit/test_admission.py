"""Admission: a session's run rate, and the gates that queue connect work in order."""

from __future__ import annotations

import asyncio
import types
from typing import Any

import pytest

from agents.live import admission
from agents.live.admission import Gate, RunRate
from tests.unit.helpers import settle

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    found = Clock()
    monkeypatch.setattr(admission, "time", types.SimpleNamespace(monotonic=found.monotonic))
    return found


def test_a_session_may_start_its_quota_of_runs_a_minute(settings: Any, clock: Clock) -> None:
    settings.QUOTA_RUNS_PER_MINUTE = 2
    rate = RunRate()
    for _ in range(2):
        assert rate.wait() == 0.0
        rate.started()
        clock.now += 10
    assert rate.wait() == pytest.approx(40.0)  # the first run was 20 s ago
    clock.now += 39.5
    assert rate.wait() == pytest.approx(0.5)
    clock.now += 0.5  # a minute after the first: it no longer counts
    assert rate.wait() == 0.0
    rate.started()
    assert rate.wait() == pytest.approx(10.0)  # the second run is now the oldest


def test_a_refused_run_does_not_count(settings: Any, clock: Clock) -> None:
    settings.QUOTA_RUNS_PER_MINUTE = 1
    rate = RunRate()
    rate.started()
    for _ in range(5):
        clock.now += 10
        assert rate.wait() > 0  # asked, refused, never started
    clock.now += 10
    assert rate.wait() == 0.0


def test_a_quota_of_zero_refuses_every_run(settings: Any, clock: Clock) -> None:
    settings.QUOTA_RUNS_PER_MINUTE = 0
    assert RunRate().wait() > 0


async def test_a_gate_admits_its_limit_and_then_the_others_in_arrival_order() -> None:
    gate = Gate(2)
    order: list[str] = []
    release = {name: asyncio.Event() for name in "abcd"}

    async def holder(name: str) -> None:
        async with gate.slot():
            order.append(name)
            await release[name].wait()

    tasks = [asyncio.create_task(holder(name)) for name in "abcd"]
    await settle()
    assert (order, gate.active, gate.waiting) == (["a", "b"], 2, 2)
    quiet = asyncio.create_task(gate.quiet())
    await settle()
    assert not quiet.done()

    release["b"].set()
    await settle()
    assert order == ["a", "b", "c"]
    release["a"].set()
    await settle()
    assert order == ["a", "b", "c", "d"]
    assert quiet.done()  # nobody waits any more
    release["c"].set()
    release["d"].set()
    await asyncio.gather(*tasks)
    assert gate.active == 0


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    gate = Gate(1)
    release = asyncio.Event()

    async def hold() -> None:
        async with gate.slot():
            await release.wait()

    first = asyncio.create_task(hold())
    second = asyncio.create_task(hold())
    await settle()
    assert gate.waiting == 1
    second.cancel()
    await settle()
    assert gate.waiting == 0
    release.set()
    await first
    assert gate.active == 0
    async with gate.slot():  # the slot is free again
        assert gate.active == 1
