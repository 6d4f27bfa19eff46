"""What a session runner tells the browser sockets attached to it (rendered in ``playground``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from agents.models import Item, Step


@dataclass(frozen=True)
class TurnStarted:
    user_item: Item


@dataclass(frozen=True)
class Rebranched:
    """The session's branch changed (a switch, an edit or a regenerate starting), published
    after the checkpoint that says so: every tab redraws from the database (a resync)."""


@dataclass(frozen=True)
class ItemStarted:
    key: str  # the upstream item id, for the live element
    kind: str  # message or function_call
    label: str  # role, or the called function's name
    column: int | None = None  # a compare's column it belongs to (None: the transcript)


@dataclass(frozen=True)
class TextDelta:
    key: str
    text: str


@dataclass(frozen=True)
class ItemDone:
    key: str
    item: Item


@dataclass(frozen=True)
class ItemAdded:
    """A completed item that did not stream (a tool's output)."""

    item: Item
    column: int | None = None


@dataclass(frozen=True)
class CallWaiting:
    """A function call waits for a person: its output (manual tool) or an approval."""

    call_id: str
    name: str
    arguments: str
    kind: str  # "output" or "approval"


@dataclass(frozen=True)
class CallResolved:
    call_id: str


@dataclass(frozen=True)
class StepDone:
    step: Step
    column: int | None = None


@dataclass(frozen=True)
class StepUpdated:
    """A step's tools finished: its line again, with their time (``tool_ms``)."""

    step: Step


@dataclass(frozen=True)
class TurnEnded:
    status: str  # completed, incomplete, stopped, interrupted, failed
    message: str = ""
    steps: tuple[Step, ...] = ()  # the run's steps, for its waterfall


@dataclass(frozen=True)
class Compared:
    """A round of a compare ended: its page redraws its board (results, chart) from the
    database, as a resync (agents/live/subscription.py)."""

    compare_id: int
    round: int


@dataclass(frozen=True)
class Notice:
    message: str


@dataclass(frozen=True)
class Retitled:
    """The session's first message gave it its title (it still had the default)."""

    session_id: str
    title: str
    pinned: bool  # for its row in the sidebar


RunEvent = (
    TurnStarted
    | Rebranched
    | ItemStarted
    | TextDelta
    | ItemDone
    | ItemAdded
    | CallWaiting
    | CallResolved
    | StepDone
    | StepUpdated
    | TurnEnded
    | Compared
    | Notice
    | Retitled
)


class Listener(Protocol):
    """A browser socket attached to a runner. ``deliver`` must not block: it queues."""

    def deliver(self, event: RunEvent | Resync) -> None: ...


@dataclass(frozen=True)
class Resync:
    """Not a run event: the runner behind a socket changed; it must sync from scratch."""

    reason: str


# -- the wire form, for the log in Redis and the fan-out to other processes ------------------------

# The session's id too: a run's end drawn by another process puts its waterfall on the session's
# scale (playground/waterfall.py).
STEP_FIELDS = tuple(f.attname for f in Step._meta.concrete_fields if f.name != "created")


def _item(item: Item) -> dict[str, Any]:
    return {
        "session_id": str(item.session_id),  # a UUID: JSON has no such type
        "position": item.position,
        "parent": item.parent,
        "data": item.data,
        "status": item.status,
        "in_context": item.in_context,
        "step_id": item.step_id,
    }


def _step(step: Step) -> dict[str, Any]:
    fields = {name: getattr(step, name) for name in STEP_FIELDS}
    fields["session_id"] = str(step.session_id)  # a UUID: JSON has no such type
    return fields


def encode(event: RunEvent) -> dict[str, Any]:
    """A run event as JSON-ready data (its records as plain fields, never as database rows)."""
    match event:
        case TurnStarted(item):
            return {"t": "TurnStarted", "item": _item(item)}
        case ItemAdded(item, column):
            return {"t": "ItemAdded", "item": _item(item), "column": column}
        case ItemDone(key, item):
            return {"t": "ItemDone", "key": key, "item": _item(item)}
        case StepDone(step, column):
            return {"t": "StepDone", "step": _step(step), "column": column}
        case StepUpdated(step):
            return {"t": "StepUpdated", "step": _step(step)}
        case TurnEnded(status, message, steps):
            return {"t": "TurnEnded", "status": status, "message": message,
                    "steps": [_step(s) for s in steps]}  # fmt: skip
    return {"t": type(event).__name__, **asdict(event)}


def decode(data: dict[str, Any]) -> RunEvent:
    """The inverse of :func:`encode`; records come back unsaved, for rendering only."""
    fields = dict(data)
    kind = fields.pop("t")
    if "item" in fields:
        fields["item"] = Item(**fields["item"])
    if "step" in fields:
        fields["step"] = Step(**fields["step"])
    if "steps" in fields:
        fields["steps"] = tuple(Step(**s) for s in fields["steps"])
    event_class = {cls.__name__: cls for cls in EVENT_CLASSES}[kind]
    if kind == "TurnStarted":
        fields["user_item"] = fields.pop("item")
    return event_class(**fields)


EVENT_CLASSES = (
    TurnStarted,
    Rebranched,
    ItemStarted,
    TextDelta,
    ItemDone,
    ItemAdded,
    CallWaiting,
    CallResolved,
    StepDone,
    StepUpdated,
    TurnEnded,
    Compared,
    Notice,
    Retitled,
)
