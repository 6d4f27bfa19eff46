"""A browser tab on a live server's session socket: a real WebSocket, htmx's acknowledgements,
and the page the frames build (bench/page.py)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect

from bench.page import Page
from playground.protocol import ACK_EVERY


@dataclass
class LiveTab:
    base_url: str
    session_id: str
    cookie: str
    page: Page = field(default_factory=Page)
    ws: ClientConnection | None = None
    received: int = 0

    async def open(self, wait: float = 15) -> LiveTab:
        """Connect and apply the snapshot (the first frame), as a page load does."""
        self.page, self.received = Page(), 0
        url = self.base_url.replace("http", "ws", 1) + f"/ws/sessions/{self.session_id}/"
        headers = {"Cookie": self.cookie, "Origin": self.base_url}
        self.ws = await connect(url, additional_headers=headers, open_timeout=wait, max_size=None)
        await self.recv(wait)
        return self

    async def recv(self, wait: float = 15) -> str:
        assert self.ws is not None
        frame = str(await asyncio.wait_for(self.ws.recv(), wait))
        self.page.apply(frame)
        self.received += 1
        if self.received % ACK_EVERY == 0:
            await self.ws.send(json.dumps({"action": "ack", "received": self.received}))
        return frame

    async def send(self, message: str) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps({"action": "send", "message": message, "HEADERS": {}}))

    async def until(self, predicate: object, wait: float = 30) -> None:
        """Read frames until ``predicate(page)`` holds."""
        deadline = time.monotonic() + wait
        while not predicate(self.page):  # type: ignore[operator]
            await self.recv(max(deadline - time.monotonic(), 0.01))

    async def until_idle(self, wait: float = 30) -> None:
        """Read until a run started and ended (the status line went busy, then ready)."""
        await self.until(lambda page: page.busy, wait)
        await self.until(lambda page: page.busy is False, wait)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
