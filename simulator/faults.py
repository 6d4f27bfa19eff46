"""Fault plans: what to break on one connection or request, from a spec string or from tests.

A spec is ``key=value`` pairs joined by ``;`` (docs/simulator.md, "Fault injection"), given in the
``sim_faults`` query parameter, the ``X-Sim-Faults`` header, or in process with
:meth:`FaultBoard.next` / :meth:`FaultBoard.always`. Request numbers ``K`` count the
``response.create`` frames of a connection from 1.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulator.errors import Shape

UPGRADE_STATUSES = (401, 403, 404, 426, 429, 500, 503)
SHAPES: tuple[Shape, ...] = ("nested", "flat", "no-status")


class FaultSpecError(ValueError):
    pass


@dataclass(frozen=True)
class EventFault:
    """Something to do once a response has sent ``after`` events (on request ``request``)."""

    after: int
    request: int | None = None  # None: whichever response reaches the count first
    value: int | None = None  # close code, or stall milliseconds (None: forever)

    def due(self, request: int, sent: int) -> bool:
        return sent == self.after and self.request in (None, request)


@dataclass
class FaultPlan:
    upgrade_status: int | None = None
    retry_after_s: int | None = None
    max_age_s: float | None = None
    close_after_events: EventFault | None = None
    drop_after_events: EventFault | None = None
    stall_after_events: EventFault | None = None
    close_after_recv: int | None = None
    error_frames: dict[int, tuple[str, Shape]] = field(default_factory=dict)
    response_failed: dict[int, str] = field(default_factory=dict)
    forget_cache_before: set[int] = field(default_factory=set)
    connection_limit_at: int | None = None
    oversize_frames: dict[int, int] = field(default_factory=dict)
    garbage_frames: set[int] = field(default_factory=set)
    binary_frames: set[int] = field(default_factory=set)
    error_rate: tuple[float, str] | None = None

    def merge(self, other: FaultPlan) -> FaultPlan:
        """This plan with every fault ``other`` sets added (``other`` wins on conflicts)."""
        merged = FaultPlan()
        for name in self.__dataclass_fields__:
            mine, theirs = getattr(self, name), getattr(other, name)
            if isinstance(mine, dict):
                setattr(merged, name, {**mine, **theirs})
            elif isinstance(mine, set):
                setattr(merged, name, mine | theirs)
            else:
                setattr(merged, name, theirs if theirs is not None else mine)
        if other.upgrade_status is not None:  # a status and its retry hint go together
            merged.retry_after_s = other.retry_after_s
        return merged

    def error_at(self, index: int, rng: random.Random) -> str | None:
        """The error code request ``index`` is to meet, if any (by index, else by chance)."""
        if index in self.error_frames:
            return self.error_frames[index][0]
        return self.random_error(rng)

    def random_error(self, rng: random.Random) -> str | None:
        if self.error_rate is None:
            return None
        rate, code = self.error_rate
        return code if rng.random() < rate else None


def junk_frames(plan: FaultPlan, index: int) -> list[dict[str, Any]]:
    """What a connection sends before request ``index``'s first event: a frame that is not
    JSON, a binary frame (ASGI messages)."""
    frames: list[dict[str, Any]] = []
    if index in plan.garbage_frames:
        frames.append({"type": "websocket.send", "text": "}{ not json"})
    if index in plan.binary_frames:
        frames.append({"type": "websocket.send", "bytes": b"\x00\xffbinary"})
    return frames


def parse(spec: str) -> FaultPlan:
    """A plan from a spec string; raises :class:`FaultSpecError` naming the bad part."""
    plan = FaultPlan()
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        key, sep, value = part.partition("=")
        handler = PARSERS.get(key.strip())
        if not sep or handler is None:
            raise FaultSpecError(f"Unknown fault {part!r}; known: {', '.join(sorted(PARSERS))}.")
        try:
            handler(plan, value.strip())
        except (ValueError, IndexError) as exc:
            raise FaultSpecError(f"Bad value in fault {part!r}: {exc}") from exc
    return plan


def _fields(value: str) -> list[str]:
    return [v.strip() for v in value.split(":")]


def _event_fault(value: str) -> EventFault:
    head, *rest = _fields(value)
    count, _, request = head.partition("@")
    extra = int(rest[0]) if rest and rest[0] else None
    return EventFault(int(count), int(request) if request else None, extra)


def _upgrade(plan: FaultPlan, value: str) -> None:
    status, *rest = _fields(value)
    if int(status) not in UPGRADE_STATUSES:
        raise ValueError(f"upgrade_status must be one of {UPGRADE_STATUSES}")
    plan.upgrade_status = int(status)
    plan.retry_after_s = int(rest[0]) if rest else None


def _error_frame(plan: FaultPlan, value: str) -> None:
    request, code, *rest = _fields(value)
    shape = rest[0] if rest else "nested"
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}")
    plan.error_frames[int(request)] = (code, SHAPES[SHAPES.index(shape)])


def _response_failed(plan: FaultPlan, value: str) -> None:
    request, code = _fields(value)
    plan.response_failed[int(request)] = code


def _oversize(plan: FaultPlan, value: str) -> None:
    request, size = _fields(value)
    plan.oversize_frames[int(request)] = int(size)


def _error_rate(plan: FaultPlan, value: str) -> None:
    rate, code = _fields(value)
    if not 0.0 <= float(rate) <= 1.0:
        raise ValueError("error_rate must be between 0 and 1")
    plan.error_rate = (float(rate), code)


def _set(name: str) -> Callable[[FaultPlan, str], None]:
    def handler(plan: FaultPlan, value: str) -> None:
        setattr(plan, name, getattr(plan, name) | {int(value)})

    return handler


PARSERS: dict[str, Callable[[FaultPlan, str], None]] = {
    "upgrade_status": _upgrade,
    "max_age_s": lambda plan, v: setattr(plan, "max_age_s", float(v)),
    "close_after_events": lambda plan, v: setattr(plan, "close_after_events", _event_fault(v)),
    "drop_after_events": lambda plan, v: setattr(plan, "drop_after_events", _event_fault(v)),
    "stall_after_events": lambda plan, v: setattr(plan, "stall_after_events", _event_fault(v)),
    "close_after_recv": lambda plan, v: setattr(plan, "close_after_recv", int(v)),
    "error_frame": _error_frame,
    "response_failed": _response_failed,
    "forget_cache_before": _set("forget_cache_before"),
    "connection_limit_at": lambda plan, v: setattr(plan, "connection_limit_at", int(v)),
    "oversize_frame": _oversize,
    "garbage_frame": _set("garbage_frames"),
    "binary_frame": _set("binary_frames"),
    "error_rate": _error_rate,
}


class FaultBoard:
    """In-process fault control for tests: plans for the next connections, or for all."""

    def __init__(self) -> None:
        self._next: deque[FaultPlan] = deque()
        self._always = FaultPlan()

    def next(self, plan: FaultPlan | str) -> None:
        """Apply ``plan`` to the next connection (or HTTP request) only; plans queue in order."""
        self._next.append(parse(plan) if isinstance(plan, str) else plan)

    def always(self, plan: FaultPlan | str) -> None:
        """Apply ``plan`` to every later connection and request, until :meth:`clear`."""
        self._always = parse(plan) if isinstance(plan, str) else plan

    def clear(self) -> None:
        self._next.clear()
        self._always = FaultPlan()

    def take(self, spec: str | None) -> FaultPlan:
        """The plan for a new connection: standing faults, then queued, then the client's spec."""
        plan = self._always
        if self._next:
            plan = plan.merge(self._next.popleft())
        if spec:
            plan = plan.merge(parse(spec))
        return plan
