"""What a session runner tells the browser sockets attached to it (rendered in ``playground``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from agents.models import Item, Step


@dataclass(frozen=True)
class TurnStarted:
    user_item: Item


@dataclass(frozen=True)
class ItemStarted:
    key: str  # the upstream item id, for the live element
    kind: str  # message or function_call
    label: str  # role, or the called function's name


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


@dataclass(frozen=True)
class TurnEnded:
    status: str  # completed, incomplete, stopped, interrupted, failed
    message: str = ""
    steps: tuple[Step, ...] = ()  # the run's steps, for its waterfall


@dataclass(frozen=True)
class Notice:
    message: str


RunEvent = (
    TurnStarted
    | ItemStarted
    | TextDelta
    | ItemDone
    | ItemAdded
    | CallWaiting
    | CallResolved
    | StepDone
    | TurnEnded
    | Notice
)


class Listener(Protocol):
    """A browser socket attached to a runner. ``deliver`` must not block: it queues."""

    def deliver(self, event: RunEvent) -> None: ...
