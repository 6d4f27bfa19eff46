"""The inspector's sockets: staff only; they re-render the pages' live parts and push them.

Each socket renders on a short timer, and sends a fragment only when it changed. The list
reads the hot state every process publishes; the detail page also asks the process that runs
the session for its upstream frames, through the channel layer when that is another process.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from agents.models import Session
from playground import jsonsafe
from playground.inspector.queries import Filters, detail_context, session_rows
from playground.protocol import CLOSE_FORBIDDEN, CLOSE_NOT_FOUND
from playground.socket_auth import authenticate

log = logging.getLogger(__name__)

LIST_EVERY = 1.0  # seconds between renders of the list
DETAIL_EVERY = 0.5


def is_staff(scope: Any) -> bool:
    user = scope.get("user")
    return bool(user is not None and user.is_active and user.is_staff)


class LiveConsumer(AsyncWebsocketConsumer):
    """Authorise staff, then render and push on a timer until the socket goes."""

    every = 1.0
    _task: asyncio.Task[None] | None = None
    _sent = ""

    async def connect(self) -> None:
        await self.accept()  # then close with 4403: a refused handshake is retried forever
        await authenticate(self.scope)  # after the handshake (playground.socket_auth)
        if not is_staff(self.scope):
            log.warning("A socket without staff rights was refused by the inspector")
            await self.close(code=CLOSE_FORBIDDEN, reason="The inspector is for staff only.")
            return
        if await self.ready():
            self._task = asyncio.create_task(self._tick())

    async def ready(self) -> bool:
        return True

    async def disconnect(self, code: int) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    async def _tick(self) -> None:
        while True:
            try:
                await self.push()
            except Exception:  # a failed render is retried at the next tick, not fatal
                log.exception("The inspector could not render")
            await asyncio.sleep(self.every)

    async def push(self) -> None:
        html = await self.render()
        if html != self._sent:
            self._sent = html
            await self.send(text_data=html)

    async def render(self) -> str:
        raise NotImplementedError


class InspectorListConsumer(LiveConsumer):
    every = LIST_EVERY
    filters = Filters()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The filter form, as htmx's ``ws-send`` sends it."""
        if self._task is None:
            return
        try:
            frame = jsonsafe.loads(text_data or "")  # a JsonError (too deep) is a ValueError
            if not isinstance(frame, dict):
                raise ValueError("not an object")
        except ValueError:
            return  # not a filter form: nothing to change
        self.filters = Filters.of(frame)
        await self.push()

    async def render(self) -> str:
        rows = await session_rows(self.filters)
        return render_to_string("admin/inspector/list.html#rows", {"rows": rows, "oob": True})


class InspectorSessionConsumer(LiveConsumer):
    every = DETAIL_EVERY
    session_id = ""

    async def ready(self) -> bool:
        self.session_id = str(self.scope["url_route"]["kwargs"]["session_id"])
        if not await Session.objects.filter(pk=self.session_id).aexists():
            await self.close(code=CLOSE_NOT_FOUND, reason="No such session.")
            return False
        return True

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        pass  # the page sends nothing; its actions are forms over HTTP

    async def render(self) -> str:
        context = await detail_context(self.session_id)
        if context is None:
            return ""
        context["oob"] = True
        return "".join(
            render_to_string(f"admin/inspector/detail.html#{name}", context)
            for name in ("state", "chain", "timeline")
        )
