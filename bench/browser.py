"""The playground driven as a browser drives it: forms over HTTP, htmx's frames over a WebSocket.

``Browser`` keeps the cookies (``csrftoken``, ``sessionid``) and submits the page's forms; a
``Tab`` is one page's socket: it sends what htmx's ``ws-send`` builds from the composer form and
reads the fragments the server pushes, timing every frame as it arrives.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx2
from websockets.asyncio.client import ClientConnection, connect

from playground.protocol import ACK_EVERY

CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
SESSION_RE = re.compile(r"/sessions/([0-9a-f-]{36})/$")
BUSY_RE = re.compile(r'id="status"[^>]*data-busy="(true|false)"')
DELTA_RE = re.compile(
    r'<template hx-swap-oob="beforeend:#live-([^"]+)-text">(.*?)</template>', re.S
)
MAX_FRAME = 64 * 1024 * 1024


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]
    mock_output: str

    def definition(self) -> dict[str, Any]:
        """The tool as the playground sends it upstream (strict off, as the form leaves it)."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "strict": False,
        }


class Browser:
    """One browser (one cookie jar) on the playground's pages."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx2.AsyncClient(base_url=base_url, timeout=60, follow_redirects=False)
        self.csrf = ""

    async def open_home(self) -> None:
        page = await self.http.get("/")
        page.raise_for_status()
        match = CSRF_RE.search(page.text)
        if match is None:
            raise RuntimeError("the home page has no CSRF token")
        self.csrf = match[1]

    async def post(self, path: str, fields: dict[str, str]) -> httpx2.Response:
        data = {"csrfmiddlewaretoken": self.csrf, **fields}
        headers = {"X-CSRFToken": self.csrf, "HX-Request": "true"}
        return await self.http.post(path, data=data, headers=headers)

    async def new_session(self) -> str:
        """Click "New session": the new session's id."""
        if not self.csrf:
            await self.open_home()
        response = await self.post("/sessions/new/", {})
        match = SESSION_RE.search(response.headers.get("location", ""))
        if response.status_code != 302 or match is None:
            raise RuntimeError(f"POST /sessions/new/ answered {response.status_code}")
        return match[1]

    async def add_tool(self, session_id: str, tool: ToolSpec) -> None:
        fields = {
            "new-name": tool.name,
            "new-description": tool.description,
            "new-mode": "mock",
            "new-builtin": "",
            "new-parameters": json.dumps(tool.parameters),
            "new-mock_output": tool.mock_output,
        }
        response = await self.post(f"/sessions/{session_id}/tools/", fields)
        if response.status_code != 200:
            raise RuntimeError(f"adding tool {tool.name} answered {response.status_code}")

    async def save_settings(self, session_id: str, **fields: Any) -> None:
        """The settings form with every field (``store`` is a checkbox: sent only when on)."""
        form = {
            "title": "Benchmark",
            "model": "sim",
            "instructions": "",
            "transport": "websocket",
            "max_steps": "25",
        }
        store = bool(fields.pop("store", False))
        form |= {key: str(value) for key, value in fields.items()}
        if store:
            form["store"] = "on"
        response = await self.post(f"/sessions/{session_id}/settings/", form)
        if response.status_code != 200:
            raise RuntimeError(f"saving settings answered {response.status_code}")

    @property
    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.http.cookies.items())

    async def close(self) -> None:
        await self.http.aclose()


@dataclass
class Frame:
    at: float  # time.monotonic() when it arrived
    text: str


@dataclass
class Turn:
    """What one run looked like from the tab: its frames and the text of each live item."""

    sent_at: float
    frames: list[Frame] = field(default_factory=list)
    ended_at: float = 0.0

    def receipts(self) -> dict[str, list[tuple[float, int]]]:
        """Per live item: (arrival time, characters received so far), one entry per fragment."""
        seen: dict[str, list[tuple[float, int]]] = {}
        for frame in self.frames:
            for key, text in DELTA_RE.findall(frame.text):
                entries = seen.setdefault(key, [])
                total = entries[-1][1] if entries else 0
                entries.append((frame.at, total + len(html.unescape(text))))
        return seen

    def texts(self) -> dict[str, str]:
        texts: dict[str, list[str]] = {}
        for frame in self.frames:
            for key, text in DELTA_RE.findall(frame.text):
                texts.setdefault(key, []).append(html.unescape(text))
        return {key: "".join(parts) for key, parts in texts.items()}


class Tab:
    """A session page's WebSocket, as htmx's ws extension opens and uses it."""

    def __init__(self, browser: Browser, ws_base: str, session_id: str) -> None:
        self.browser, self.session_id = browser, session_id
        self.url = f"{ws_base}/ws/sessions/{session_id}/"
        # The page's origin is the server the socket goes to: behind a load balancer every
        # process shares one origin, and sockets must come from the same scheme, host and port.
        self.origin = "http" + ws_base.removeprefix("ws")
        self.page_url = f"{browser.base_url}/sessions/{session_id}/"
        self.ws: ClientConnection | None = None
        self.first_frame: Frame | None = None
        self.received = 0  # frames since the socket opened, as static/playground.js counts

    async def open(self, wait: float = 30) -> Tab:
        """Connect and wait for the first fragment (the snapshot): the page is live."""
        headers = {"Cookie": self.browser.cookie_header, "Origin": self.origin}
        self.ws = await connect(
            self.url,
            additional_headers=headers,
            compression=None,
            max_size=MAX_FRAME,
            open_timeout=wait,
        )
        self.received = 0
        self.first_frame = await self.recv(wait)
        return self

    async def recv(self, wait: float | None = None) -> Frame:
        """The next frame, acknowledged as the page does (every 8th): the server sends at most
        a window of frames ahead of the acknowledgements, so a tab that never acknowledged
        would stall."""
        assert self.ws is not None
        text = str(await asyncio.wait_for(self.ws.recv(), wait))
        frame = Frame(time.monotonic(), text)
        self.received += 1
        if self.received % ACK_EVERY == 0:
            await self.ws.send(json.dumps({"action": "ack", "received": self.received}))
        return frame

    async def send(self, message: str) -> float:
        """Submit the composer (as ``ws-send`` does); returns when it was sent."""
        assert self.ws is not None
        headers = {
            "HX-Request": "true",
            "HX-Trigger": "composer",
            "HX-Trigger-Name": None,
            "HX-Target": "composer",
            "HX-Current-URL": self.page_url,
        }
        frame = json.dumps({"action": "send", "message": message, "HEADERS": headers})
        sent_at = time.monotonic()
        await self.ws.send(frame)
        return sent_at

    async def turn(self, message: str, wait: float = 120) -> Turn:
        """Send a message and read until the status line goes from busy back to ready."""
        assert self.ws is not None
        turn = Turn(await self.send(message))
        busy = False
        async with asyncio.timeout(wait):
            while True:
                frame = await self.recv()
                turn.frames.append(frame)
                for state in BUSY_RE.findall(frame.text):
                    if state == "true":
                        busy = True
                    elif busy:
                        turn.ended_at = turn.frames[-1].at
                        return turn

    @property
    def open_now(self) -> bool:
        return self.ws is not None and self.ws.state.name == "OPEN"

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
