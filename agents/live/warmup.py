"""Prewarm: open a session's upstream socket before its first step, with ``generate: false``.

The upstream then caches the session's settings and transcript, so the first step is a delta
(client checklist, docs/client-checklist.md). Rotation (make-before-break) warms the new socket
the same way. Best effort: when it fails, the first step opens the socket with a full create.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol

from agents import dbthread
from agents.live import admission
from agents.metrics import UPSTREAM_ERRORS
from agents.models import Session
from agents.run import transcript
from agents.run.events import Notice, RunEvent
from agents.run.retry import error_kind
from agents.run.writes import WriteBehind
from agents.upstream.delta import Stored
from agents.upstream.transports import Transports
from agents.upstream.turn import UpstreamError, UpstreamRefused
from agents.upstream.websocket import NO_WEBSOCKET

log = logging.getLogger(__name__)

WARM_LANE = "warm"

PREWARM_TIMEOUT = 15.0


@dataclass
class Warmed:
    rotated: bool = False  # a rotation replaced the socket
    fall_back: str = ""  # why the session must use HTTP instead
    notice: str = ""  # what to tell the tabs


async def warm(
    session_id: str, transports: Transports, writes: WriteBehind, rotate: bool
) -> Warmed:
    """Warm (or rotate) the session's socket; what happened, never an upstream error."""
    try:
        return Warmed(rotated=await warm_up(session_id, transports, writes, rotate))
    except UpstreamRefused as exc:
        UPSTREAM_ERRORS.labels(kind="refused").inc()
        if exc.status in NO_WEBSOCKET:
            return Warmed(fall_back=f"the upstream has no WebSocket mode (HTTP {exc.status})")
        return Warmed(notice=f"Could not warm the upstream connection: {exc}")
    except (UpstreamError, TimeoutError) as exc:
        UPSTREAM_ERRORS.labels(kind="connection").inc()
        # Best effort: the first step connects and sends the full context instead.
        log.warning("Prewarm of session %s failed: %s", session_id, exc)
        return Warmed(notice=f"Could not warm the upstream connection: {exc}")


async def warm_up(
    session_id: str, transports: Transports, writes: WriteBehind, rotate: bool
) -> bool:
    """Warm the socket for the session's settings, tools and transcript (or rotate it); True
    if a rotation replaced the socket. Raises what the upstream raised, or TimeoutError."""
    found = await dbthread.call(_inputs, session_id)
    if found is None or transports.fell_back:
        return False
    session, fields, items, stored = found
    # Its own lane: the next run forks from it (a cache hit) and leaves it for a regenerate.
    lane = WARM_LANE
    if rotate:
        return await asyncio.wait_for(
            transports.rotate_if_due(fields, items, session_id, lane), PREWARM_TIMEOUT
        )
    prewarm = transports.websocket.prewarm(fields, items, lane, stored)
    turn = await asyncio.wait_for(prewarm, PREWARM_TIMEOUT)
    if turn is not None and turn.error:
        UPSTREAM_ERRORS.labels(kind=error_kind(turn)).inc()
    if turn is not None and turn.response_id:
        step = transcript.new_step(session, turn.metrics, turn.response_id, "completed")
        writes.submit(step.save)
        await writes.flush()
    return False


def _inputs(
    session_id: str,
) -> tuple[Session, dict[str, Any], list[transcript.ItemData], Stored | None] | None:
    """What a warm-up sends, read in one trip to the database thread: the session, its request
    fields, its branch's context and stored parent; None for a session on HTTP."""
    session = Session.objects.get(pk=session_id)
    if session.transport == "http":
        return None
    fields = session.request_fields(list(session.tools.all()))
    path = transcript.branch_now(session).path
    items, stored = transcript.context_and_stored_now(session, path)
    return session, fields, items, stored


class WarmHost(Protocol):
    """What a prewarm needs of its runner (agents/live/runner.py)."""

    session_id: str
    transports: Transports
    closed: bool

    @property
    def busy(self) -> bool: ...

    def writes(self) -> WriteBehind: ...

    def report(self) -> None: ...

    def fall_back(self, reason: str) -> None: ...

    def publish(self, event: RunEvent) -> None: ...


class Prewarm:
    """A runner's warm-ups, in the background: one at a time, once more when the settings
    changed while one ran; queued behind connects and capped (agents/live/admission.py), so a
    storm of tabs opening never waits on them."""

    def __init__(self, host: WarmHost) -> None:
        self.host = host
        self.task: asyncio.Task[None] | None = None
        self._again = False
        self._warming = False  # admitted and talking to the upstream

    async def settled(self) -> None:
        """Until a warm-up already talking to the upstream is done (a run starting meanwhile
        then chains from it: a delta, not a second full context on the same socket). One still
        waiting for its turn is skipped instead, once the run has started."""
        if self.task is not None and self._warming:
            with suppress(Exception):
                await asyncio.shield(self.task)

    def start(self, rotate: bool = False) -> None:
        if self.task is not None:
            self._again = True  # the settings changed while warming: warm once more
        elif not self.host.busy:
            self.task = asyncio.create_task(self._run(rotate))

    async def _run(self, rotate: bool) -> None:
        host = self.host
        try:
            async with admission.prewarm_slot() as admitted:
                if not admitted:
                    log.info("Prewarm of session %s skipped: too many waiting", host.session_id)
                elif not host.busy and not host.closed:  # else a run opens the socket itself
                    self._warming = True
                    warmed = await warm(host.session_id, host.transports, host.writes(), rotate)
                    if warmed.rotated:
                        host.report()
                    if warmed.fall_back:
                        host.fall_back(warmed.fall_back)
                    if warmed.notice:
                        host.publish(Notice(warmed.notice))
        finally:
            self.task, self._warming = None, False
            if self._again:
                self._again = False
                self.start()
