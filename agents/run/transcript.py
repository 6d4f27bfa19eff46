"""Reading and appending a session's transcript (the runner is its only writer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Max

from agents import dbthread
from agents.models import Item, Session, Step
from agents.run import tree
from agents.upstream.delta import Stored
from agents.upstream.turn import StepMetrics

ItemData = dict[str, Any]
UNANSWERED_CALL = "Error: the run ended before this tool answered."
LINEAR = -1  # append()'s default parent: the item just before


def user_message(text: str) -> ItemData:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def branch_now(session: Session) -> tree.Branch:
    """The session's current branch (synchronous: on the database thread)."""
    links = Item.objects.filter(session=session).values_list("position", "parent")
    return tree.branch(links, session.head)


async def branch(session: Session) -> tree.Branch:
    return await dbthread.call(branch_now, session)


def _context_rows(session: Session, path: tuple[int, ...] | None) -> list[tuple[ItemData, Any]]:
    """Each context item on the branch (or ``path``), in order, with its step's id."""
    if path is None:
        path = branch_now(session).path
    rows = Item.objects.filter(session=session, in_context=True, position__in=path)
    return list(rows.order_by("position").values_list("data", "step_id"))


@dataclass(frozen=True)
class Reading:
    """What a run starts from, read in three queries: the session's branch, the next free
    position, the branch's context, its latest stored response (with the session's store on),
    and its calls left without an output (by call_id)."""

    branch: tree.Branch
    next_position: int
    context: list[ItemData]
    stored: Stored | None
    unanswered: list[str]


def read_now(session: Session) -> Reading:
    """:class:`Reading` (synchronous: on the database thread)."""
    links = list(Item.objects.filter(session=session).values_list("position", "parent"))
    branch = tree.branch(links, session.head)
    top = max((position for position, _ in links), default=-1)
    rows = _context_rows(session, branch.path)
    context = [data for data, _ in rows]
    # A run chains from a stored response only with store on (agents/upstream/delta.py).
    stored = _stored(session, rows) if session.store else None
    return Reading(branch, top + 1, context, stored, _unanswered(context))


def _unanswered(context: list[ItemData]) -> list[str]:
    calls = [str(i.get("call_id", "")) for i in context if i.get("type") == "function_call"]
    answered = {
        str(i.get("call_id", "")) for i in context if i.get("type") == "function_call_output"
    }
    return [call_id for call_id in dict.fromkeys(calls) if call_id not in answered]


def context_and_stored_now(
    session: Session, path: tuple[int, ...] | None
) -> tuple[list[ItemData], Stored | None]:
    """:func:`context_now` and :func:`stored_parent_now` from one read of the branch's items."""
    rows = _context_rows(session, path)
    return [data for data, _ in rows], _stored(session, rows)


def repairs(session: Session, position: int, tip: int | None, missing: list[str]) -> list[Item]:
    """An error output, from ``position`` on and not saved yet, for each call in ``missing``;
    each follows the one before it.

    A run that died between a function call and its output (a bug, a lost database) must not
    leave a context the upstream refuses ("No tool output found") on every later turn.
    """
    made = []
    for index, call_id in enumerate(missing):
        parent = tip if index == 0 else position + index - 1
        data = output(call_id, UNANSWERED_CALL)
        made.append(new_item(session, position + index, data, parent=parent))
    return made


def _stored(session: Session, rows: list[tuple[ItemData, Any]]) -> Stored | None:
    steps = {step_id for _, step_id in rows if step_id is not None}
    if not steps:
        return None
    found = Step.objects.filter(session=session, stored=True, status="completed", pk__in=steps)
    stored = {pk: rid for pk, rid in found.values_list("pk", "response_id") if rid}
    for index in range(len(rows) - 1, -1, -1):
        data, step_id = rows[index]
        # A tool's output is saved with the step that called it but is not that response's.
        if step_id in stored and data.get("type") != "function_call_output":
            return Stored(stored[step_id], index + 1)
    return None


def output(call_id: str, text: str) -> ItemData:
    return {"type": "function_call_output", "call_id": call_id, "output": text}


async def next_position(session_id: Any) -> int:
    return await dbthread.call(next_position_now, session_id)


def next_position_now(session_id: Any) -> int:
    """:func:`next_position`, synchronous: on the database thread, with other queries."""
    top = Item.objects.filter(session_id=session_id).aggregate(top=Max("position"))["top"]
    return 0 if top is None else int(top) + 1


def new_item(
    session: Session,
    position: int,
    data: ItemData,
    *,
    parent: int | None = None,
    step: Step | None = None,
    status: str = Item.Status.COMPLETED,
    in_context: bool = True,
) -> Item:
    """An item, not saved yet (the run's write-behind saves it), following ``parent``."""
    return Item(
        session=session,
        position=position,
        parent=parent,
        data=data,
        step=step,
        status=status,
        in_context=in_context,
    )


async def append(
    session: Session, position: int, data: ItemData, parent: int | None = LINEAR
) -> Item:
    """Save an item now, after ``parent`` (by default the item before it: a linear transcript)."""
    if parent == LINEAR:
        parent = position - 1 if position > 0 else None
    item = new_item(session, position, data, parent=parent)
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
        route=metrics.route,
        lane=metrics.lane,
        stored=metrics.stored,
    )
