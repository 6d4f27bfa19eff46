"""The session runner: sole owner of a session's upstream socket, its chain and its turns.

One runner per session in this process. Browser sockets attach to it and receive its events;
turns run as tasks of the runner, never inside a consumer's ``receive()``.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from agents import transcript
from agents.events import (
    ItemDone,
    ItemStarted,
    Listener,
    Notice,
    RunEvent,
    StepDone,
    TextDelta,
    TurnEnded,
    TurnStarted,
)
from agents.models import Item, Session
from agents.store import context_store
from agents.upstream import UpstreamError, UpstreamSession, UpstreamTurn

log = logging.getLogger(__name__)

PREWARM_TIMEOUT = 15.0
TEXT_DELTAS = frozenset({"response.output_text.delta", "response.function_call_arguments.delta"})


@dataclass
class Partial:
    """An output item as streamed so far (what a stop keeps)."""

    kind: str
    data: dict[str, Any]
    text: list[str] = field(default_factory=list)

    def stopped_data(self) -> dict[str, Any]:
        text = "".join(self.text)
        if self.kind == "message":
            content = [{"type": "output_text", "text": text}]
            return {"type": "message", "role": "assistant", "content": content}
        return {**self.data, "arguments": text}


class SessionRunner:
    def __init__(self, session_id: str, upstream: UpstreamSession, idle_grace: float) -> None:
        self.session_id = session_id
        self.upstream = upstream
        self.idle_grace = idle_grace
        self.listeners: set[Listener] = set()
        self.turn_task: asyncio.Task[None] | None = None
        self._warm_task: asyncio.Task[None] | None = None
        self._idle_task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def busy(self) -> bool:
        return self.turn_task is not None and not self.turn_task.done()

    # -- sockets ---------------------------------------------------------------------------------

    def attach(self, listener: Listener) -> None:
        """A browser socket joined: keep the upstream, and warm it if it is new."""
        self.listeners.add(listener)
        if self._idle_task is not None:
            self._idle_task.cancel()
            self._idle_task = None
        if not self.upstream.has_chain and not self.busy and self._warm_task is None:
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
        if self._warm_task is not None:
            self._warm_task.cancel()
        await self.upstream.close()

    # -- turns -----------------------------------------------------------------------------------

    def submit(self, text: str) -> bool:
        """Start a turn with the user's message; False if one is already running."""
        if self.busy:
            return False
        self._stopping = False
        self.turn_task = asyncio.create_task(self._turn(text))
        return True

    def stop(self) -> bool:
        """Abort the upstream socket at once (the protocol has no cancel event)."""
        if not self.busy:
            return False
        self._stopping = True
        self.upstream.discard()
        return True

    async def _prewarm(self) -> None:
        try:
            session = await Session.objects.aget(pk=self.session_id)
            fields = session.request_fields()
            items = await transcript.context(self.session_id)
            turn = await asyncio.wait_for(self.upstream.prewarm(fields, items), PREWARM_TIMEOUT)
            if turn is not None and turn.response_id:
                await transcript.record_step(session, turn.metrics, turn.response_id, "completed")
                await self._remember_head(turn.response_id)
        except (UpstreamError, TimeoutError) as exc:
            # Best effort: the first turn connects and sends the full context instead.
            log.warning("Prewarm of session %s failed: %s", self.session_id, exc)
            self.publish(Notice(f"Could not warm the upstream connection: {exc}"))
        finally:
            self._warm_task = None

    async def _turn(self, text: str) -> None:
        status, message = "failed", ""
        try:
            session = await Session.objects.aget(pk=self.session_id)
            position = await transcript.next_position(self.session_id)
            user_item = await transcript.append(session, position, transcript.user_message(text))
            await context_store().update(self.session_id, running="1")
            self.publish(TurnStarted(user_item))
            status, message = await self._respond(session, position + 1)
        except Exception:
            log.exception("Turn of session %s failed", self.session_id)
            message = "The run failed unexpectedly; the transcript is kept. Try again."
        finally:
            with suppress(Exception):
                await context_store().update(self.session_id, running="")
            self.publish(TurnEnded(status, message))
            self.turn_task = None
            self._schedule_idle_close()

    async def _respond(self, session: Session, position: int) -> tuple[str, str]:
        """Run one upstream response, persisting each item as it completes."""
        fields = session.request_fields()
        items = await transcript.context(self.session_id)
        partials: dict[str, Partial] = {}
        saved: list[Item] = []
        turn: UpstreamTurn | None = None
        try:
            async with self.upstream.turn(fields, items) as turn:
                async for event in turn:
                    position = await self._relay(event, session, position, partials, saved)
        except UpstreamError as exc:
            status = "stopped" if self._stopping else "failed"
            await self._keep_partials(session, position, partials, status)
            if turn is not None:
                await self._record(session, turn, status, saved)
            if self._stopping:
                return "stopped", "Stopped. The partial reply is kept."
            return "failed", f"{exc} The partial reply is kept; send again to retry."
        assert turn is not None
        assert turn.terminal is not None
        status, message = _outcome(turn.terminal)
        await self._record(session, turn, status, saved)
        return status, message

    async def _relay(
        self,
        event: dict[str, Any],
        session: Session,
        position: int,
        partials: dict[str, Partial],
        saved: list[Item],
    ) -> int:
        kind = event.get("type")
        if kind in TEXT_DELTAS:
            key = str(event.get("item_id", ""))
            partial = partials.get(key)
            if partial is not None:
                partial.text.append(event["delta"])
                self.publish(TextDelta(key, event["delta"]))
        elif kind == "response.output_item.added":
            data = event["item"]
            key = str(data.get("id", ""))
            partials[key] = Partial(str(data.get("type")), data)
            label = str(data.get("name") or data.get("role") or data.get("type"))
            self.publish(ItemStarted(key, str(data.get("type")), label))
        elif kind == "response.output_item.done":
            data = event["item"]
            key = str(data.get("id", ""))
            partials.pop(key, None)
            item = await transcript.append(session, position, data)
            saved.append(item)
            self.publish(ItemDone(key, item))
            return position + 1
        return position

    async def _keep_partials(
        self, session: Session, position: int, partials: dict[str, Partial], status: str
    ) -> None:
        for key, partial in partials.items():
            data = partial.stopped_data()
            # An unfinished function call cannot go back upstream; a partial message can.
            usable = partial.kind == "message" and bool(partial.text)
            item_status = Item.Status.STOPPED if status == "stopped" else Item.Status.INTERRUPTED
            item = await transcript.append(
                session, position, data, status=item_status, in_context=usable
            )
            position += 1
            self.publish(ItemDone(key, item))

    async def _record(
        self, session: Session, turn: UpstreamTurn, status: str, saved: list[Item]
    ) -> None:
        step = await transcript.record_step(session, turn.metrics, turn.response_id, status)
        if saved:
            await Item.objects.filter(pk__in=[i.pk for i in saved]).aupdate(step=step)
        if turn.response_id and status == "completed":
            await self._remember_head(turn.response_id)
        self.publish(StepDone(step))

    async def _remember_head(self, response_id: str) -> None:
        await context_store().update(self.session_id, head=response_id)


def _outcome(terminal: dict[str, Any]) -> tuple[str, str]:
    kind = terminal.get("type")
    if kind == "response.completed":
        return "completed", ""
    if kind == "error":
        error = terminal.get("error") or {}
        return "failed", f"The upstream answered {error.get('code')}: {error.get('message')}"
    response = terminal.get("response") or {}
    if kind == "response.incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason", "unknown")
        return "incomplete", f"The reply is incomplete ({reason})."
    error = response.get("error") or {}
    return "failed", f"The upstream failed: {error.get('code')}: {error.get('message')}"


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
