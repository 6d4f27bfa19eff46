"""The session runner: sole owner of a session's upstream transports, its chain and its runs.

One runner per session across every process: the process that holds the session's lease
(agents/live/lease.py) runs it (agents/live/sessions.py starts it). Browser sockets in that
process attach to its feed directly; sockets in other processes follow the feed through the
channel layer and send their commands to this process's mailbox (agents/live/mailbox.py). Runs
are tasks of the runner, never awaited inside a consumer's ``receive()``. What a run does is in
agents/live/turn.py and agents/run/loop.py; the runner is the loop's host (agents/run/host.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Coroutine
from contextlib import suppress
from typing import Any

from django.conf import settings

from agents.live import admission, local
from agents.live.compare import run_compare
from agents.live.feed import Feed
from agents.live.inspection import PROCESS, FrameLog, frames_json, report_state, report_tabs
from agents.live.lease import leases, renewals
from agents.live.people import WaitingCalls
from agents.live.turn import Fork, run_turn, switch_branch
from agents.live.warmup import PREWARM_TIMEOUT, Prewarm
from agents.run.events import Listener, Notice, Resync, RunEvent, StepDone, TurnEnded, TurnStarted
from agents.run.stop import StopSignal
from agents.run.writes import WriteBehind
from agents.upstream.delta import Item
from agents.upstream.http import HttpUpstream
from agents.upstream.transports import Transports
from agents.upstream.websocket import UpstreamSession
from playground.logging import session_context

log = logging.getLogger(__name__)

Problem = tuple[str, str]  # (code, text) of a command that cannot be done


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
        forget: Callable[[SessionRunner], None] = lambda runner: None,
    ) -> None:
        self.session_id = session_id
        self.idle_grace = idle_grace
        self.holder = holder  # this runner's lease value
        self.fence = fence  # its fencing token: what every transcript write checks
        self.feed = feed
        self.forget = forget  # takes this runner out of the process's registry once closed
        # For the inspector: the upstream's latest frames.
        self.frames = FrameLog()
        self.transports = Transports(upstream, self.frames)
        self.stop = StopSignal()
        self.calls = WaitingCalls(self.publish)
        self.turn_task: asyncio.Task[None] | None = None
        self.closed = False
        self.prewarm = Prewarm(self)
        self._idle_task: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._rate = admission.RunRate()

    @property
    def websocket(self) -> UpstreamSession:
        return self.transports.websocket

    @property
    def transport(self) -> UpstreamSession | HttpUpstream:
        return self.transports.current

    @property
    def listeners(self) -> set[Listener]:
        return self.feed.listeners

    @property
    def busy(self) -> bool:
        return self.turn_task is not None and not self.turn_task.done()

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
        return "connected" if self.transports.prefer_http or self.websocket.connected else "closed"

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
        local.keep(asyncio.create_task(self._report(state)))

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
            "waiting_calls": len(self.calls),
            "frames": frames_json(self.frames.since(since)),
            "frame_count": self.frames.count,
        }

    # -- the host of a run (agents/run/host.py) --------------------------------------------------

    def checkpoint(self, writes: WriteBehind, base: int) -> None:
        """Once what is queued in ``writes`` is durable, items below ``base`` are in the
        database and the feed can drop the events they account for."""
        seq, running, turn = self.feed.seq, self.feed.head.running, self.feed.head.turn
        writes.then(lambda: self.feed.checkpoint(base, seq, running, turn))

    def writes(self) -> WriteBehind:
        return WriteBehind(self.session_id, self.fence)

    async def ask(self, call: Item, kind: str) -> str:
        return await self.calls.ask(call, kind)

    def fall_back(self, reason: str) -> None:
        """Use HTTP for the rest of this session's life in this process (items 23-26)."""
        self.transports.fall_back()
        self.publish(Notice(f"Falling back to HTTP for this session: {reason}."))

    async def rotate_if_due(
        self, fields: dict[str, Any], context: list[Item], lane: str | None = None
    ) -> bool:
        rotated = await self.transports.rotate_if_due(fields, context, self.session_id, lane)
        if rotated:
            self.report()
        return rotated

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.feed.start(self.lost)
        # Fresh reports at each renewal, so the inspector can tell a live owner from a dead one.
        renewals().hold(self.session_id, self.holder, self.report, self.lost)
        self.report()

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
            if not await local.followed_elsewhere(self.session_id):
                break
        self._idle_task = None
        await self.close()

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
        async with local.claim_lock(self.session_id):
            self.forget(self)
            renewals().drop(self.session_id, self.holder)
            for task in (self.prewarm.task, self.turn_task, self._idle_task):
                if task is not None and task is not current:
                    task.cancel()
            await self.transports.close()
            await self.feed.close()
            with suppress(Exception):
                await leases().release(self.session_id, self.holder)
                await local.announce_left(self.session_id)
        for listener in list(self.listeners):
            listener.deliver(Resync(reason or "The session's runner closed."))
        self.listeners.clear()
        with suppress(Exception):
            await report_state(self.session_id, upstream="closed", connected_at="")
            await report_tabs(self.session_id, ())

    # -- commands --------------------------------------------------------------------------------

    def command(self, action: str, message: str = "", target: str = "") -> Problem | None:
        """A browser's command, from any process; (code, problem) if it cannot be done."""
        if self.closed:
            return "moved", "The session moved to another server; try again."
        if action == "stop":
            if not self.busy:
                return "idle", "Nothing is running."
            self.halt("stopped")  # the protocol has no cancel event: the upstream is aborted
            return None
        if action in ("tool_output", "approve"):
            kind = "output" if action == "tool_output" else "approval"
            problem = self.calls.answer(target, kind, message)
            return ("answer_refused", problem) if problem else None
        if action == "rotate":
            return self._rotate_now()
        if action == "drop":
            return self._drop_upstream()
        if action == "inspect":
            return None
        if self.busy:
            return "busy", "A run is in progress: wait for it, or stop it."
        if local.DRAINING.started:  # its process is stopping: no new run starts here
            return "moved", "This server is restarting; send again in a moment."
        if action == "branch":  # busy meanwhile: no run starts on the branch being left
            self._start(switch_branch(self, int(target)))
            return None
        wait = self._rate.wait()
        if wait:
            limit = settings.QUOTA_RUNS_PER_MINUTE
            return "rate_limited", (
                f"This session may start at most {limit} runs a minute: "
                f"send again in {math.ceil(wait)} s."
            )
        if action == "compare":
            self._start(run_compare(self, int(target), int(message)))
        else:
            fork = Fork(int(target), edit=action == "edit") if action != "send" else None
            self.submit(message, fork)
        self._rate.started()
        return None

    def submit(self, text: str, fork: Fork | None = None) -> bool:
        """Start a run with the user's message (or an edit or a regenerate); False if one is
        already running."""
        if self.busy:
            return False
        self._start(run_turn(self, text, fork))
        return True

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` (a run, a compare, a branch switch) as the session's one task."""
        self.stop.reset()
        self.turn_task = asyncio.create_task(self._until_done(work))

    async def _until_done(self, work: Coroutine[Any, Any, None]) -> None:
        # Every log line of the run names its session, whoever started it (a tab, a mailbox).
        session_context.set(self.session_id)
        try:
            try:
                await self.prewarm.settled()
            except asyncio.CancelledError:
                work.close()  # closed before it began: it has nothing to end
                raise
            await work
        finally:
            self.turn_task = None
            self._schedule_idle_close()

    def halt(self, status: str) -> None:
        self.stop.halt(status)
        self.transports.discard_all()

    def _rotate_now(self) -> Problem | None:
        """Staff: replace the upstream socket (make-before-break): now if idle, else at the
        run's next step boundary."""
        if not self.transports.on_socket:
            return "no_socket", "The session has no upstream socket to rotate."
        self.transports.rotate_due = True
        if not self.busy and self.prewarm.task is None:
            self.prewarm.start(rotate=True)
        return None

    def _drop_upstream(self) -> Problem | None:
        """Staff: abort the upstream socket, to watch the recovery rules at work."""
        if not self.transports.on_socket:
            return "no_socket", "The session has no upstream socket to drop."
        self.websocket.discard()
        self.publish(Notice("The upstream connection was dropped by staff."))
        self.report()
        return None

    def warm(self) -> None:
        """Warm the upstream for the session's current settings and tools, in the background
        (on the first tab, and when they change, so the next step is a delta)."""
        self.prewarm.start()
