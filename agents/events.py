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
class StepDone:
    step: Step


@dataclass(frozen=True)
class TurnEnded:
    status: str  # completed, incomplete, stopped, failed
    message: str = ""


@dataclass(frozen=True)
class Notice:
    message: str


RunEvent = TurnStarted | ItemStarted | TextDelta | ItemDone | StepDone | TurnEnded | Notice


class Listener(Protocol):
    """A browser socket attached to a runner. ``deliver`` must not block: it queues."""

    def deliver(self, event: RunEvent) -> None: ...
