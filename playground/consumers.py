"""The browser's socket to a session: authorise, validate frames, hand work to the runner."""

from __future__ import annotations

import logging
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from agents.events import RunEvent
from agents.runner import SessionRunner, runner_for
from playground import render
from playground.access import visible_sessions
from playground.outbox import Outbox
from playground.protocol import FrameError, parse_frame

log = logging.getLogger(__name__)

CLOSE_FORBIDDEN = 4403  # 4xxx: htmx's ws extension does not reconnect after it


class SessionConsumer(AsyncWebsocketConsumer):
    runner: SessionRunner | None = None
    outbox: Outbox | None = None

    async def connect(self) -> None:
        session_id = str(self.scope["url_route"]["kwargs"]["session_id"])
        browser = self.scope.get("session")
        sessions = visible_sessions(
            self.scope.get("user"), browser.session_key if browser else None
        )
        # Accept, then close with 4403: a close before accept is an HTTP 403 that browsers
        # report as 1006, which htmx retries forever.
        await self.accept()
        if not await sessions.filter(pk=session_id).aexists():
            await self.close(code=CLOSE_FORBIDDEN, reason="This session is not yours.")
            return
        self.group = f"session.{session_id}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.outbox = Outbox(self.send)
        self.runner = runner_for(session_id)
        self.runner.attach(self)
        self.outbox.put(render.status(self.runner.busy))

    async def disconnect(self, code: int) -> None:
        if self.runner is None or self.outbox is None:
            return
        self.runner.detach(self)
        await self.channel_layer.group_discard(self.group, self.channel_name)
        await self.outbox.close()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.runner is None or self.outbox is None:
            return
        try:
            action = parse_frame(text_data, bytes_data)
        except FrameError as error:
            self.outbox.put(render.notice(error.message, "error", error.code))
            return
        if action.name == "stop":
            if not self.runner.stop():
                self.outbox.put(render.notice("Nothing is running.", "info", "idle"))
        elif action.name in ("tool_output", "approve"):
            kind = "output" if action.name == "tool_output" else "approval"
            problem = self.runner.answer(action.call_id, kind, action.message)
            if problem:
                self.outbox.put(render.notice(problem, "error", "answer_refused"))
        elif not self.runner.submit(action.message):
            message = "A run is in progress: wait for it, or stop it."
            self.outbox.put(render.notice(message, "error", "busy"))

    def deliver(self, event: RunEvent) -> None:
        """Called by the runner for each of its events; queued, never awaited here."""
        if self.outbox is not None:
            self.outbox.put_event(event)

    async def session_changed(self, message: dict[str, Any]) -> None:
        """Group message from a view: the settings or tools changed (on any page or tab)."""
        if self.outbox is not None and self.runner is not None:
            self.outbox.put(render.notice(str(message.get("text", "")), "info", "changed"))
            self.runner.warm()
