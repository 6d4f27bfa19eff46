"""A browser tab on a session, as htmx's ws extension drives it, over the real ASGI app."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.db import SessionStore

from agents.models import Session
from playground.access import browser_key_hash
from playground.asgi import application
from playground.protocol import ACK_EVERY

ORIGIN = "http://127.0.0.1:8000"
HOST = (b"host", b"127.0.0.1:8000")  # the page's own origin is ORIGIN: the socket is served
BUSY_RE = re.compile(r'id="status"[^>]*data-busy="(true|false)"')
CODE_RE = re.compile(r'id="notice"[^>]*data-code="([^"]*)"')


async def new_browser() -> str:
    """A fresh anonymous Django session; its key is the browser's ``sessionid`` cookie."""
    store = SessionStore()
    await store.acreate()
    return str(store.session_key)


async def new_session(browser_key: str, **fields: Any) -> Session:
    """A session of the anonymous browser whose session key is ``browser_key``."""
    owner = browser_key_hash(browser_key)
    return await Session.objects.acreate(browser_key=owner, model="sim", **fields)


@dataclass
class Tab:
    session_id: str
    browser_key: str
    origin: str | None = ORIGIN
    frames: list[str] = field(default_factory=list)
    communicator: WebsocketCommunicator | None = None

    async def open(self) -> Tab:
        headers = [HOST, (b"cookie", f"sessionid={self.browser_key}".encode())]
        if self.origin is not None:
            headers.append((b"origin", self.origin.encode()))
        path = f"/ws/sessions/{self.session_id}/"
        self.communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, _ = await self.communicator.connect(timeout=10)
        assert connected, "the socket was not accepted"
        return self

    async def send_frame(self, payload: str | bytes) -> None:
        assert self.communicator is not None
        if isinstance(payload, bytes):
            await self.communicator.send_to(bytes_data=payload)
        else:
            await self.communicator.send_to(text_data=payload)

    async def send(self, message: str) -> None:
        await self.send_frame(json.dumps({"action": "send", "message": message, "HEADERS": {}}))

    async def stop(self) -> None:
        await self.send_frame(json.dumps({"action": "stop", "HEADERS": {}}))

    async def receive(self, wait: float = 10) -> str:
        assert self.communicator is not None
        output = await self.communicator.receive_output(wait)
        if output["type"] == "websocket.close":
            raise ConnectionError(f"closed with {output.get('code')}: {output.get('reason')}")
        frame = str(output.get("text", ""))
        self.frames.append(frame)
        if len(self.frames) % ACK_EVERY == 0:  # as static/playground.js does
            await self.send_frame(json.dumps({"action": "ack", "received": len(self.frames)}))
        return frame

    async def until(self, pattern: str, wait: float = 20) -> str:
        """Frames until one matches ``pattern`` (a regular expression); returns that frame."""
        while True:
            frame = await self.receive(wait)
            if re.search(pattern, frame):
                return frame

    async def turn(self, message: str, wait: float = 30) -> str:
        """Send a message and wait for the run to end; returns every frame of the turn as one."""
        start = len(self.frames)
        await self.send(message)
        await self.until(r'data-busy="true"', wait)
        await self.until(r'data-busy="false"', wait)
        return "".join(self.frames[start:])

    async def close_output(self, wait: float = 5) -> dict[str, Any]:
        """The close message the server sent (after an accept)."""
        assert self.communicator is not None
        while True:
            output = await self.communicator.receive_output(wait)
            if output["type"] == "websocket.close":
                return dict(output)

    async def close(self) -> None:
        if self.communicator is not None:
            await self.communicator.disconnect()
