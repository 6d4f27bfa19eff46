"""People in the loop: calls that wait for a manual output or an approval."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agents.live.people import WaitingCalls
from agents.run.events import CallResolved, CallWaiting, RunEvent
from tests.unit.helpers import settle

pytestmark = pytest.mark.unit


def call(call_id: str = "c1") -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": "lookup", "arguments": '{"q": 1}'}


async def waiting(
    kind: str = "output", call_id: str = "c1"
) -> tuple[WaitingCalls, list[RunEvent], asyncio.Task[str]]:
    published: list[RunEvent] = []
    calls = WaitingCalls(published.append)
    task = asyncio.create_task(calls.ask(call(call_id), kind))
    await settle()
    return calls, published, task


async def test_a_waiting_call_is_announced_and_answered_once() -> None:
    calls, published, task = await waiting()
    assert published == [CallWaiting("c1", "lookup", '{"q": 1}', "output")]
    assert len(calls) == 1

    assert calls.answer("c1", "output", "42") is None
    assert await task == "42"

    assert published[-1] == CallResolved("c1")
    assert len(calls) == 0
    problem = calls.answer("c1", "output", "again")  # the first answer won
    assert problem == "That call is not waiting for an answer (any more)."


async def test_an_answer_of_the_wrong_kind_or_call_is_refused_and_the_call_waits() -> None:
    calls, _, task = await waiting("approval")

    assert calls.answer("c1", "output", "42") == "That call waits for approval, not output."
    assert calls.answer("nope", "approval", "yes") is not None
    await settle()
    assert not task.done()
    assert calls.answer("c1", "approval", "no") is None
    assert await task == "no"


async def test_an_output_over_the_limit_is_refused(settings: Any) -> None:
    settings.TOOL_OUTPUT_LIMIT = 5
    calls, _, task = await waiting()
    assert calls.answer("c1", "output", "123456") == (
        "The output is over the limit of 5 characters."
    )
    assert calls.answer("c1", "output", "12345") is None
    assert await task == "12345"


async def test_the_run_ending_cancels_every_wait_and_clears_the_list() -> None:
    published: list[RunEvent] = []
    calls = WaitingCalls(published.append)
    tasks = [asyncio.create_task(calls.ask(call(f"c{n}"), "output")) for n in range(2)]
    await settle()
    assert len(calls) == 2

    calls.cancel_all()
    results = await asyncio.gather(*tasks, return_exceptions=True)

    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    assert len(calls) == 0
    assert {e for e in published if isinstance(e, CallResolved)} == {
        CallResolved("c0"),
        CallResolved("c1"),
    }
