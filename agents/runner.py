"""The session runner: sole owner of a session's upstream transport, its chain and its runs.

One runner per session in this process. Browser sockets attach to it and receive its events;
runs are tasks of the runner, never awaited inside a consumer's ``receive()``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from agents import transcript
from agents.clients import shared_client
from agents.events import (
    CallResolved,
    CallWaiting,
    Listener,
    Notice,
    RunEvent,
    TurnEnded,
    TurnStarted,
)
from agents.http_upstream import HttpUpstream
from agents.loop import NO_WEBSOCKET, AgentLoop
from agents.models import Session
from agents.store import context_store
from agents.upstream import Item, UpstreamError, UpstreamRefused, UpstreamSession

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
    def __init__(self, session_id: str, upstream: UpstreamSession, idle_grace: float) -> None:
        self.session_id = session_id
        self.websocket = upstream
        self.http: HttpUpstream | None = None
        self.prefer_http = False
        self.idle_grace = idle_grace
        self.listeners: set[Listener] = set()
        self.turn_task: asyncio.Task[None] | None = None
        self.pending: dict[str, PendingCall] = {}
        self.stopping = False
        self._stop = asyncio.Event()
        self._warm_task: asyncio.Task[None] | None = None
        self._idle_task: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        return self.turn_task is not None and not self.turn_task.done()

    @property
    def transport(self) -> UpstreamSession | HttpUpstream:
        if self.prefer_http:
            if self.http is None:
                client = shared_client(settings.UPSTREAM_BASE_URL, settings.OPENAI_API_KEY)
                self.http = HttpUpstream(client)
            return self.http
        return self.websocket

    # -- sockets ---------------------------------------------------------------------------------

    def attach(self, listener: Listener) -> None:
        """A browser socket joined: keep the upstream, warm it if it is new, show what waits."""
        self.listeners.add(listener)
        if self._idle_task is not None:
            self._idle_task.cancel()
            self._idle_task = None
        for pending in self.pending.values():
            listener.deliver(pending.event)
        self.warm()

    def warm(self) -> None:
        """Warm the upstream for the session's current settings and tools, in the background
        (on the first tab, and when they change, so the next step is a delta)."""
        if not self.busy and self._warm_task is None:
            self._warm_task = asyncio.create_task(self._prewarm())

    def detach(self, listener: Listener) -> None:
        self.listeners.discard(listener)
        self._schedule_idle_close()

    def publish(self, event: RunEvent) -> None:
        for listener in list(self.listeners):
            listener.deliver(event)

    def _schedule_idle_close(self) -> None:
        if not self.listeners and not self.busy and self._idle_task is None:
            self._idle_task = asyncio.create_task(self._close_when_idle())

    async def _close_when_idle(self) -> None:
        await asyncio.sleep(self.idle_grace)
        if self.listeners or self.busy:
            self._idle_task = None
            return
        if RUNNERS.get(self.session_id) is self:
            del RUNNERS[self.session_id]
        await self.close()

    async def close(self) -> None:
        for task in (self._warm_task, self.turn_task):
            if task is not None:
                task.cancel()
        await self.websocket.close()
        if self.http is not None:
            await self.http.close()

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
        self.stopping = True
        self._stop.set()
        self.transport.discard()
        return True

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
        try:
            return await self.websocket.rotate(fields, context, settings.ROTATE_AFTER_SECONDS)
        except UpstreamError as exc:
            # The old socket still works; the next step boundary tries again.
            log.warning("Rotation of session %s failed: %s", self.session_id, exc)
            return False

    async def _prewarm(self) -> None:
        try:
            session = await Session.objects.aget(pk=self.session_id)
            if session.transport == "http" or self.prefer_http:
                return
            tools = [tool async for tool in session.tools.all()]
            fields = session.request_fields(tools)
            items = await transcript.context(self.session_id)
            turn = await asyncio.wait_for(self.websocket.prewarm(fields, items), PREWARM_TIMEOUT)
            if turn is not None and turn.response_id:
                await transcript.record_step(session, turn.metrics, turn.response_id, "completed")
        except UpstreamRefused as exc:
            if exc.status in NO_WEBSOCKET:
                self.fall_back(f"the upstream has no WebSocket mode (HTTP {exc.status})")
            else:
                self.publish(Notice(f"Could not warm the upstream connection: {exc}"))
        except (UpstreamError, TimeoutError) as exc:
            # Best effort: the first step connects and sends the full context instead.
            log.warning("Prewarm of session %s failed: %s", self.session_id, exc)
            self.publish(Notice(f"Could not warm the upstream connection: {exc}"))
        finally:
            self._warm_task = None

    async def _turn(self, text: str) -> None:
        status, message = "failed", ""
        loop: AgentLoop | None = None
        try:
            session = await Session.objects.aget(pk=self.session_id)
            self.prefer_http = self.prefer_http or session.transport == "http"
            position = await transcript.next_position(self.session_id)
            user_item = await transcript.append(session, position, transcript.user_message(text))
            await context_store().update(self.session_id, running="1")
            self.publish(TurnStarted(user_item))
            loop = AgentLoop(self, session, position)
            try:
                status, message = await loop.run()
            finally:
                # Everything of the run is in the database before its end is announced.
                await loop.writes.flush()
        except Exception:
            log.exception("Run of session %s failed", self.session_id)
            message = "The run failed unexpectedly; the transcript is kept. Try again."
        finally:
            for pending in self.pending.values():
                pending.answer.cancel()
            with suppress(Exception):
                await context_store().update(self.session_id, running="")
            self.publish(TurnEnded(status, message, tuple(loop.steps) if loop else ()))
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


RUNNERS: dict[str, SessionRunner] = {}


def runner_for(session_id: str) -> SessionRunner:
    """This process's runner of the session, created on first use."""
    runner = RUNNERS.get(session_id)
    if runner is None:
        upstream = UpstreamSession(settings.UPSTREAM_BASE_URL, settings.OPENAI_API_KEY)
        runner = RUNNERS[session_id] = SessionRunner(
            session_id, upstream, settings.IDLE_GRACE_SECONDS
        )
    return runner
