"""The session runner: sole owner of a session's upstream transport, its chain and its runs.

One runner per session across every process: the process that holds the session's lease
(agents/lease.py) runs it (agents/sessions.py starts it). Browser sockets in that process attach
to its feed directly; sockets in other processes follow the feed through the channel layer and
send their commands to this process's mailbox. Runs are tasks of the runner, never awaited
inside a consumer's ``receive()``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from agents import admission, registry, transcript
from agents.clients import shared_client
from agents.events import (
    CallResolved,
    CallWaiting,
    ItemAdded,
    Listener,
    Notice,
    Resync,
    RunEvent,
    StepDone,
    TurnEnded,
    TurnStarted,
)
from agents.feed import Feed
from agents.http_upstream import HttpUpstream
from agents.inspection import PROCESS, FrameLog, frames_json, report_state, report_tabs
from agents.lease import leases
from agents.loop import NO_WEBSOCKET, AgentLoop
from agents.models import Session
from agents.store import context_store
from agents.upstream import Item, UpstreamError, UpstreamRefused, UpstreamSession
from agents.writes import Fenced, WriteBehind

log = logging.getLogger(__name__)

PREWARM_TIMEOUT = 15.0


@dataclass
class PendingCall:
    """A function call waiting for a person: its manual output or an approval."""

    call: Item
    kind: str
    answer: asyncio.Future[str]

    @property
    def event(self) -> CallWaiting:
        data = self.call
        return CallWaiting(data["call_id"], data["name"], data.get("arguments", ""), self.kind)


class SessionRunner:
    def __init__(
        self,
        session_id: str,
        upstream: UpstreamSession,
        idle_grace: float,
        *,
        holder: str,
        fence: int,
        feed: Feed,
    ) -> None:
        self.session_id = session_id
        self.websocket = upstream
        self.http: HttpUpstream | None = None
        self.prefer_http = False
        self.idle_grace = idle_grace
        self.holder = holder  # this runner's lease value
        self.fence = fence  # its fencing token: what every transcript write checks
        self.feed = feed
        self.turn_task: asyncio.Task[None] | None = None
        self.pending: dict[str, PendingCall] = {}
        self.stopping = False
        # What a halted run's partial items become: stopped by a person, or interrupted.
        self.halt_status = "stopped"
        self.closed = False
        self._stop = asyncio.Event()
        self._warm_task: asyncio.Task[None] | None = None
        self._idle_task: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._warm_again = False
        # For the inspector: the upstream's latest frames, and a rotation asked for by staff.
        self.frames = FrameLog()
        self.websocket.recorder = self.frames
        self._rotate_due = False
        self._runs: deque[float] = deque()  # when its recent runs started (monotonic clock)

    @property
    def listeners(self) -> set[Listener]:
        return self.feed.listeners

    @property
    def busy(self) -> bool:
        return self.turn_task is not None and not self.turn_task.done()

    @property
    def transport(self) -> UpstreamSession | HttpUpstream:
        if self.prefer_http:
            if self.http is None:
                client = shared_client(settings.UPSTREAM_BASE_URL, settings.OPENAI_API_KEY)
                self.http = HttpUpstream(client)
                self.http.recorder = self.frames
            return self.http
        return self.websocket

    # -- sockets ---------------------------------------------------------------------------------

    def attach(self, listener: Listener) -> None:
        """A browser socket joined: keep the upstream, warm it if it is new. The socket takes
        the feed's snapshot in the same step, so it misses and repeats nothing."""
        self.listeners.add(listener)
        if self._idle_task is not None:
            self._idle_task.cancel()
            self._idle_task = None
        self.warm()
        self.report()

    def warm(self) -> None:
        """Warm the upstream for the session's current settings and tools, in the background
        (on the first tab, and when they change, so the next step is a delta)."""
        if self._warm_task is not None:
            self._warm_again = True  # the settings changed while warming: warm once more
        elif not self.busy:
            self._warm_task = asyncio.create_task(self._prewarm())

    def detach(self, listener: Listener) -> None:
        self.listeners.discard(listener)
        self._schedule_idle_close()
        self.report()

    def publish(self, event: RunEvent) -> None:
        self.feed.publish(event)
        if isinstance(event, TurnStarted | StepDone | TurnEnded):
            self.report()  # the upstream socket may have changed: the inspector shows it

    # -- what the inspector sees -----------------------------------------------------------------

    @property
    def upstream_state(self) -> str:
        if self.closed:
            return "closed"
        if self._idle_task is not None:
            return "idle grace"
        return "connected" if self.prefer_http or self.websocket.connected else "closed"

    def report(self) -> None:
        """Publish this runner's state and sockets for the inspector, in the background."""
        socket = self.websocket.socket
        connected_at = f"{time.time() - socket.age:.3f}" if socket and not self.closed else ""
        state = {
            "process": PROCESS,
            "upstream": self.upstream_state,
            "transport": self.transport.transport,
            "connected_at": connected_at,
        }
        registry.keep(asyncio.create_task(self._report(state)))

    async def _report(self, state: dict[str, str]) -> None:
        await report_state(self.session_id, **state)
        await report_tabs(self.session_id, self.listeners)

    def inspection(self, since: int = 0) -> dict[str, Any]:
        """The live detail of this runner: its state and upstream frames after ``since``."""
        socket = self.websocket.socket
        return {
            "process": PROCESS,
            "upstream": self.upstream_state,
            "transport": self.transport.transport,
            "age_s": socket.age if socket is not None else None,
            "sockets_opened": self.websocket.sockets_opened,
            "requests_on_socket": socket.requests if socket is not None else 0,
            "busy": self.busy,
            "waiting_calls": len(self.pending),
            "frames": frames_json(self.frames.since(since)),
            "frame_count": self.frames.count,
        }

    def checkpoint(self, writes: WriteBehind, base: int) -> None:
        """Once what is queued in ``writes`` is durable, items below ``base`` are in the
        database and the feed can drop the events they account for."""
        seq, running, turn = self.feed.seq, self.feed.head.running, self.feed.head.turn
        writes.then(lambda: self.feed.checkpoint(base, seq, running, turn))

    def writes(self) -> WriteBehind:
        return WriteBehind(self.session_id, self.fence)

    def _schedule_idle_close(self) -> None:
        if not self.listeners and not self.busy and self._idle_task is None and not self.closed:
            self._idle_task = asyncio.create_task(self._close_when_idle())

    async def _close_when_idle(self) -> None:
        while True:
            await asyncio.sleep(self.idle_grace)
            if self.listeners or self.busy:
                self._idle_task = None
                return
            # Tabs on other processes follow this runner too: it stays while they are there.
            if not await registry.followed_elsewhere(self.session_id):
                break
        self._idle_task = None
        await self.close()

    async def start(self) -> None:
        await self.feed.start(self.lost)
        self._heartbeat = asyncio.create_task(self._renew_lease())
        self.report()

    async def _renew_lease(self) -> None:
        """Renew the lease at a third of its life; a runner that cannot, stops."""
        held_until = time.monotonic() + settings.LEASE_SECONDS
        while True:
            await asyncio.sleep(settings.LEASE_SECONDS / 3)
            try:
                renewed = await leases().renew(self.session_id, self.holder)
            except Exception as exc:
                log.warning("Could not renew the lease of session %s: %s", self.session_id, exc)
                renewed = time.monotonic() < held_until
                if not renewed:
                    log.warning("Session %s: lease expired while Redis was away", self.session_id)
            else:
                held_until = time.monotonic() + settings.LEASE_SECONDS
            if not renewed:
                self.lost()
                return
            self.report()  # fresh, so the inspector can tell a live owner from a dead one

    def lost(self) -> None:
        """The lease is gone (expired, taken, or Redis lost it): halt the run, then close."""
        if self.closed:
            return
        log.warning("Session %s: this process no longer runs it", self.session_id)
        if self.busy:
            self.halt("interrupted")
        self._closing = asyncio.create_task(self.close("The server running this session changed."))

    async def close(self, reason: str = "") -> None:
        """End this runner: its run, its upstream socket, its lease; tabs sync elsewhere."""
        if self.closed:
            return
        self.closed = True
        current = asyncio.current_task()
        if self.turn_task is not None and reason:
            # Let a halted run keep its partial reply (its writes are fenced if we lost it).
            with suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self.turn_task), PREWARM_TIMEOUT)
        # Under the claim lock: a socket of this process that attaches meanwhile waits, then
        # starts the next runner, and the two never hold upstream sockets at the same time.
        async with registry.claim_lock(self.session_id):
            if registry.RUNNERS.get(self.session_id) is self:
                del registry.RUNNERS[self.session_id]
            for task in (self._warm_task, self.turn_task, self._heartbeat, self._idle_task):
                if task is not None and task is not current:
                    task.cancel()
            await self.websocket.close()
            if self.http is not None:
                await self.http.close()
            await self.feed.close()
            with suppress(Exception):
                await leases().release(self.session_id, self.holder)
        for listener in list(self.listeners):
            listener.deliver(Resync(reason or "The session's runner closed."))
        self.listeners.clear()
        with suppress(Exception):
            await report_state(self.session_id, upstream="closed", connected_at="")
            await report_tabs(self.session_id, ())

    # -- runs ------------------------------------------------------------------------------------

    def submit(self, text: str) -> bool:
        """Start a run with the user's message; False if one is already running."""
        if self.busy:
            return False
        self.stopping = False
        self._stop.clear()
        self.turn_task = asyncio.create_task(self._turn(text))
        return True

    def stop(self) -> bool:
        """Abort the upstream at once (the protocol has no cancel event) and end the run."""
        if not self.busy:
            return False
        self.halt("stopped")
        return True

    def halted(self) -> str | None:
        """How the current run was halted (stopped, interrupted), if it was."""
        return self.halt_status if self.stopping else None

    def halt(self, status: str) -> None:
        self.stopping = True
        self.halt_status = status
        self._stop.set()
        self.transport.discard()

    def command(self, action: str, message: str = "", call_id: str = "") -> tuple[str, str] | None:
        """A browser's command, from any process; (code, problem) if it cannot be done."""
        if self.closed:
            return "moved", "The session moved to another server; try again."
        if action == "stop":
            return None if self.stop() else ("idle", "Nothing is running.")
        if action in ("tool_output", "approve"):
            kind = "output" if action == "tool_output" else "approval"
            problem = self.answer(call_id, kind, message)
            return ("answer_refused", problem) if problem else None
        if action == "rotate":
            return self.rotate_now()
        if action == "drop":
            return self.drop_upstream()
        if action == "inspect":
            return None
        if self.busy:
            return "busy", "A run is in progress: wait for it, or stop it."
        wait = self._run_quota_wait()
        if wait:
            limit = settings.QUOTA_RUNS_PER_MINUTE
            return "rate_limited", (
                f"This session may start at most {limit} runs a minute: "
                f"send again in {math.ceil(wait)} s."
            )
        self.submit(message)
        self._runs.append(time.monotonic())
        return None

    def _run_quota_wait(self) -> float:
        """Seconds until this session may start another run (``QUOTA_RUNS_PER_MINUTE``, over
        the last minute: this runner starts every run of its session)."""
        now = time.monotonic()
        while self._runs and now - self._runs[0] >= 60:
            self._runs.popleft()
        if len(self._runs) < settings.QUOTA_RUNS_PER_MINUTE:
            return 0.0
        return 60 - (now - self._runs[0]) if self._runs else 60.0

    async def until_stopped(self, work: Awaitable[Any]) -> bool:
        """Wait for ``work``; True (and the work cancelled) if the user stops first."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if task.done():
            task.result()
            return False
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        return True

    def fall_back(self, reason: str) -> None:
        """Use HTTP for the rest of this session's life in this process (items 23-26)."""
        self.prefer_http = True
        self.websocket.discard()
        self.publish(Notice(f"Falling back to HTTP for this session: {reason}."))

    async def rotate_if_due(self, fields: dict[str, Any], context: list[Item]) -> bool:
        if self.transport is not self.websocket:
            return False
        max_age = 0.0 if self._rotate_due else settings.ROTATE_AFTER_SECONDS
        try:
            rotated = await self.websocket.rotate(fields, context, max_age)
        except UpstreamError as exc:
            # The old socket still works; the next step boundary tries again.
            log.warning("Rotation of session %s failed: %s", self.session_id, exc)
            return False
        if rotated:
            self._rotate_due = False
            self.report()
        return rotated

    def rotate_now(self) -> tuple[str, str] | None:
        """Staff: replace the upstream socket (make-before-break): now if idle, else at the
        run's next step boundary."""
        if self.transport is not self.websocket or not self.websocket.connected:
            return "no_socket", "The session has no upstream socket to rotate."
        self._rotate_due = True
        if not self.busy and self._warm_task is None:
            self._warm_task = asyncio.create_task(self._prewarm(rotate=True))
        return None

    def drop_upstream(self) -> tuple[str, str] | None:
        """Staff: abort the upstream socket, to watch the recovery rules at work."""
        if self.transport is not self.websocket or not self.websocket.connected:
            return "no_socket", "The session has no upstream socket to drop."
        self.websocket.discard()
        self.publish(Notice("The upstream connection was dropped by staff."))
        self.report()
        return None

    async def _prewarm(self, rotate: bool = False) -> None:
        try:
            # Queued behind connects and capped (agents/admission.py): a storm of tabs opening
            # never waits on their prewarms.
            async with admission.prewarm_slot() as admitted:
                if not admitted:
                    log.info("Prewarm of session %s skipped: too many waiting", self.session_id)
                elif not self.busy and not self.closed:  # else a run opens the socket itself
                    await self._warm_up(rotate)
        finally:
            self._warm_task = None
            if self._warm_again:
                self._warm_again = False
                self.warm()

    async def _warm_up(self, rotate: bool) -> None:
        try:
            session = await Session.objects.aget(pk=self.session_id)
            if session.transport == "http" or self.prefer_http:
                return
            tools = [tool async for tool in session.tools.all()]
            fields = session.request_fields(tools)
            items = await transcript.context(self.session_id)
            if rotate:
                await asyncio.wait_for(self.rotate_if_due(fields, items), PREWARM_TIMEOUT)
                return
            turn = await asyncio.wait_for(self.websocket.prewarm(fields, items), PREWARM_TIMEOUT)
            if turn is not None and turn.response_id:
                step = transcript.new_step(session, turn.metrics, turn.response_id, "completed")
                writes = self.writes()
                writes.submit(step.save)
                await writes.flush()
        except UpstreamRefused as exc:
            if exc.status in NO_WEBSOCKET:
                self.fall_back(f"the upstream has no WebSocket mode (HTTP {exc.status})")
            else:
                self.publish(Notice(f"Could not warm the upstream connection: {exc}"))
        except (UpstreamError, TimeoutError) as exc:
            # Best effort: the first step connects and sends the full context instead.
            log.warning("Prewarm of session %s failed: %s", self.session_id, exc)
            self.publish(Notice(f"Could not warm the upstream connection: {exc}"))

    async def _turn(self, text: str) -> None:
        status, message = "failed", ""
        loop: AgentLoop | None = None
        writes = self.writes()
        base = self.feed.head.base
        try:
            session = await Session.objects.aget(pk=self.session_id)
            self.prefer_http = self.prefer_http or session.transport == "http"
            position = await transcript.next_position(self.session_id)
            # Calls a failed run left unanswered get an error output first (issue 11, item 4).
            for repair in await transcript.answer_unanswered_calls(session, position):
                writes.submit(repair.save)
                self.publish(ItemAdded(repair))
                position += 1
            user_item = transcript.new_item(session, position, transcript.user_message(text))
            writes.submit(user_item.save)
            await writes.flush()  # the message is durable before anything goes upstream
            base = position + 1
            with suppress(Exception):
                await context_store().update(self.session_id, running="1")
            self.publish(TurnStarted(user_item))
            self.feed.checkpoint(base, self.feed.seq, running=True, turn=position)
            loop = AgentLoop(self, session, position, writes)
            try:
                status, message = await loop.run()
            finally:
                base = loop.position
                # Everything of the run is in the database before its end is announced.
                await writes.flush()
        except Exception as exc:
            if not isinstance(exc, Fenced):
                log.exception("Run of session %s failed", self.session_id)
            status = "interrupted" if isinstance(exc, Fenced) else "failed"
            message = "The run failed unexpectedly; the transcript is kept. Try again."
        finally:
            for pending in self.pending.values():
                pending.answer.cancel()
            with suppress(Exception):
                await context_store().update(self.session_id, running="")
            self.publish(TurnEnded(status, message, tuple(loop.steps) if loop else ()))
            self.feed.checkpoint(base, self.feed.seq, running=False)
            self.turn_task = None
            self._schedule_idle_close()

    # -- people in the loop ----------------------------------------------------------------------

    async def ask(self, call: Item, kind: str) -> str:
        """Wait until a person answers ``call`` from any tab (manual output or approval)."""
        pending = PendingCall(call, kind, asyncio.get_running_loop().create_future())
        self.pending[call["call_id"]] = pending
        self.publish(pending.event)
        try:
            return await pending.answer
        finally:
            del self.pending[call["call_id"]]
            self.publish(CallResolved(call["call_id"]))

    def answer(self, call_id: str, kind: str, value: str) -> str | None:
        """Resolve a waiting call; the reason it cannot be, otherwise None."""
        pending = self.pending.get(call_id)
        if pending is None or pending.answer.done():
            return "That call is not waiting for an answer (any more)."
        if pending.kind != kind:
            return f"That call waits for {pending.kind}, not {kind}."
        if kind == "output" and len(value) > settings.TOOL_OUTPUT_LIMIT:
            return f"The output is over the limit of {settings.TOOL_OUTPUT_LIMIT} characters."
        pending.answer.set_result(value)
        return None
