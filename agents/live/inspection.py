"""What the staff inspector sees of a live session: its upstream frames, its sockets, its state.

A session's runner keeps the latest upstream frames in a bounded :class:`FrameLog` (type,
sequence number, size, time and the start of the payload) and publishes a compact state to the
context store when it changes and at every lease beat: which process owns the session, the
upstream socket's state, transport and age, and the browser sockets and share viewers attached
in each process. The inspector lists sessions from those states and asks the owning process for
the frame log of the session it shows.
"""

from __future__ import annotations

import os
import socket
import time
from collections import deque
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings

from agents.live.store import context_store

# One name per process, shown as the owner of the sessions it runs.
PROCESS = f"{socket.gethostname()}:{os.getpid()}"
FRAMES_KEPT = 300
PAYLOAD_CHARS = 1_000  # the start of each frame's payload; enough to see what it was
TABS_PREFIX = "tabs@"  # per process: "<browser sockets> <share viewers> <unix time>"


@dataclass(frozen=True)
class Frame:
    number: int  # this session's frame count, in and out
    at: float  # unix time
    direction: str  # "in" (from the upstream) or "out"
    type: str
    sequence: int | None
    size: int  # bytes on the wire
    payload: str  # its start, with secrets removed


def redact(text: str) -> str:
    """No API key in what the inspector shows (frames never carry it; this is a backstop)."""
    key = settings.OPENAI_API_KEY
    if key and len(key) >= 8:
        text = text.replace(key, "[redacted]")
    return text


class FrameLog:
    """The latest upstream frames of one session, in and out; cheap enough for every delta."""

    def __init__(self, kept: int = FRAMES_KEPT) -> None:
        self._frames: deque[tuple[int, float, str, str, int | None, int, str | bytes]] = deque(
            maxlen=kept
        )
        self.count = 0

    def record(self, direction: str, kind: str, sequence: Any, raw: str | bytes) -> None:
        """Keep the raw start of the frame; decoding waits until someone looks."""
        self.count += 1
        seq = sequence if isinstance(sequence, int) else None
        start = raw[:PAYLOAD_CHARS]
        self._frames.append((self.count, time.time(), direction, kind, seq, len(raw), start))

    def since(self, number: int = 0) -> list[Frame]:
        frames = []
        for count, at, direction, kind, seq, size, start in self._frames:
            if count > number:
                text = start.decode(errors="replace") if isinstance(start, bytes) else start
                frames.append(Frame(count, at, direction, kind, seq, size, redact(text)))
        return frames


def tab_counts(listeners: Iterable[object]) -> tuple[int, int]:
    """(browser sockets, share viewers) among a process's sockets on a session."""
    sockets = viewers = 0
    for listener in listeners:
        if getattr(listener, "read_only", False):
            viewers += 1
        else:
            sockets += 1
    return sockets, viewers


async def report_tabs(session_id: str, listeners: Iterable[object]) -> None:
    """This process's sockets on the session, for the inspector's list (best effort)."""
    sockets, viewers = tab_counts(listeners)
    value = f"{sockets} {viewers} {time.time():.0f}"
    with suppress(Exception):
        await context_store().update(session_id, **{TABS_PREFIX + PROCESS: value})


async def report_state(session_id: str, **state: str) -> None:
    """The runner's state (process, upstream, transport, connected_at), stamped with now."""
    with suppress(Exception):
        await context_store().update(session_id, state_at=f"{time.time():.3f}", **state)


@dataclass
class LiveState:
    """A session as the inspector's list shows it, from the hot state in the context store."""

    upstream: str = "closed"  # connected, idle grace, closed
    transport: str = ""
    process: str = ""
    age_s: float | None = None  # of the upstream socket
    sockets: int = 0
    viewers: int = 0
    running: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def live_state(hot: dict[str, str], now: float | None = None) -> LiveState:
    """Read a session's hot state; what a dead process left behind does not count."""
    now = time.time() if now is None else now
    stale_after = 3 * settings.LEASE_SECONDS
    state = LiveState(running=bool(hot.get("running")))
    fresh = now - float(hot.get("state_at") or 0) < stale_after
    if fresh and hot.get("upstream"):
        state.upstream = hot["upstream"]
        state.transport = hot.get("transport", "")
        state.process = hot.get("process", "")
        if hot.get("connected_at"):
            state.age_s = max(now - float(hot["connected_at"]), 0.0)
    elif not fresh:
        state.running = False  # the run's process is gone; recovery marks it interrupted
    for field, value in hot.items():
        if field.startswith(TABS_PREFIX):
            sockets, viewers, at = value.split()
            if now - float(at) < stale_after:
                state.sockets += int(sockets)
                state.viewers += int(viewers)
    return state


def frames_json(frames: list[Frame]) -> list[dict[str, Any]]:
    return [asdict(frame) for frame in frames]
