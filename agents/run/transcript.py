"""Reading and appending a session's transcript (the runner is its only writer)."""

from __future__ import annotations

from typing import Any

from django.db.models import Max

from agents.models import Item, Session, Step
from agents.upstream.turn import StepMetrics

ItemData = dict[str, Any]
UNANSWERED_CALL = "Error: the run ended before this tool answered."


def user_message(text: str) -> ItemData:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


async def context(session_id: Any) -> list[ItemData]:
    """The items the upstream must see, in order: the transcript minus unusable partials."""
    rows = Item.objects.filter(session_id=session_id, in_context=True).order_by("position")
    return [row.data async for row in rows.only("data")]


async def answer_unanswered_calls(session: Session, position: int) -> list[Item]:
    """An error output, from ``position`` on and not saved yet, for each call in the context
    that has none.

    A run that died between a function call and its output (a bug, a lost database) must not
    leave a context the upstream refuses ("No tool output found") on every later turn.
    """
    kinds = ["function_call", "function_call_output"]
    rows = Item.objects.filter(session=session, in_context=True, data__type__in=kinds)
    calls: list[str] = []
    answered: set[str] = set()
    async for row in rows.order_by("position").only("data"):
        call_id = str(row.data.get("call_id", ""))
        if row.kind == "function_call":
            calls.append(call_id)
        else:
            answered.add(call_id)
    missing = [call_id for call_id in dict.fromkeys(calls) if call_id not in answered]
    return [
        new_item(session, position + index, output(call_id, UNANSWERED_CALL))
        for index, call_id in enumerate(missing)
    ]


def output(call_id: str, text: str) -> ItemData:
    return {"type": "function_call_output", "call_id": call_id, "output": text}


async def next_position(session_id: Any) -> int:
    result = await Item.objects.filter(session_id=session_id).aaggregate(top=Max("position"))
    top = result["top"]
    return 0 if top is None else int(top) + 1


def next_position_now(session_id: Any) -> int:
    """:func:`next_position`, synchronous: on the database thread, with other queries."""
    top = Item.objects.filter(session_id=session_id).aggregate(top=Max("position"))["top"]
    return 0 if top is None else int(top) + 1


def new_item(
    session: Session,
    position: int,
    data: ItemData,
    *,
    step: Step | None = None,
    status: str = Item.Status.COMPLETED,
    in_context: bool = True,
) -> Item:
    """An item, not saved yet (the run's write-behind saves it)."""
    return Item(
        session=session,
        position=position,
        data=data,
        step=step,
        status=status,
        in_context=in_context,
    )


async def append(session: Session, position: int, data: ItemData) -> Item:
    item = new_item(session, position, data)
    await item.asave()
    return item


def new_step(
    session: Session,
    metrics: StepMetrics,
    response_id: str,
    status: str,
    *,
    retries: int = 0,
    turn_position: int | None = None,
    started_ms: float = 0.0,
) -> Step:
    """A step's record, not saved yet."""
    return Step(
        session=session,
        model=session.model,
        response_id=response_id,
        previous_response_id=metrics.previous_response_id,
        mode=metrics.mode,
        socket=metrics.socket,
        status=status,
        bytes_sent=metrics.bytes_sent,
        ttft_ms=metrics.ttft_ms,
        duration_ms=metrics.duration_ms,
        input_tokens=metrics.input_tokens,
        cached_tokens=metrics.cached_tokens,
        output_tokens=metrics.output_tokens,
        retries=retries,
        turn_position=turn_position,
        started_ms=started_ms,
    )


async def record_step(
    session: Session, metrics: StepMetrics, response_id: str, status: str
) -> Step:
    step = new_step(session, metrics, response_id, status)
    await step.asave()
    return step
