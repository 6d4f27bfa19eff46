"""A browser tab on a session page's socket, as htmx's ws extension drives it.

One client, two connections behind one interface: :class:`InProcess` (channels' communicator over
``playground.asgi.application``, no server) and :class:`Socket` (a real WebSocket to a server).
The :class:`Tab` does what the page does (static/playground.js): it acknowledges every
``ACK_EVERY``-th frame (the server sends at most a window of frames ahead of them), sends the
composer as ``ws-send`` builds it, follows the status line (busy or ready), and keeps the frames
and the page they build (:mod:`devtools.page`).
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Self

from websockets.asyncio.client import ClientConnection, connect
from websockets.protocol import State

from devtools.page import Page
from playground.protocol import ACK_EVERY

if TYPE_CHECKING:
    from channels.testing import WebsocketCommunicator

# In process, the page's origin and the Host its socket names: the socket is the page's own.
ORIGIN = "http://127.0.0.1:8000"
HOST = (b"host", b"127.0.0.1:8000")
SAME_ORIGIN = ""  # a Tab's default origin: the page's own (its server's), as a browser sends it
BUSY_RE = re.compile(r'id="status"[^>]*data-busy="(true|false)"')
DELTA_RE = re.compile(
    r'<template hx-swap-oob="beforeend:#live-([^"]+)-text">(.*?)</template>', re.S
)


@dataclass
class Frame:
    at: float  # time.monotonic() when it arrived
    text: str
    states: tuple[bool, ...] = ()  # the status line in this frame, in order: busy (True) or not


@dataclass
class Turn:
    """What one run looked like from the tab: its frames and the text of each live item."""

    sent_at: float
    frames: list[Frame] = field(default_factory=list)
    ended_at: float = 0.0

    @property
    def text(self) -> str:
        return "".join(frame.text for frame in self.frames)

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


class Connection(Protocol):
    async def send(self, payload: str | bytes) -> None: ...

    async def recv(self, wait: float | None) -> str: ...  # within wait s (None: however long)

    async def close(self) -> None: ...

    @property
    def open_now(self) -> bool: ...


class InProcess:
    """The ASGI app in this process, through channels' communicator (a close: ConnectionError)."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator

    @classmethod
    async def connect(cls, path: str, headers: list[tuple[bytes, bytes]], wait: float) -> Self:
        # Imported here: the app (and Django's setup) only for tabs that run it in this process.
        from channels.testing import WebsocketCommunicator

        from playground.asgi import application

        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, _ = await communicator.connect(timeout=wait)
        assert connected, "the socket was not accepted"
        return cls(communicator)

    async def send(self, payload: str | bytes) -> None:
        if isinstance(payload, bytes):
            await self.communicator.send_to(bytes_data=payload)
        else:
            await self.communicator.send_to(text_data=payload)

    async def recv(self, wait: float | None) -> str:
        # asyncio.timeout(None) waits however long; the stubs say float.
        output = await self.communicator.receive_output(wait)  # type: ignore[arg-type]
        if output["type"] == "websocket.close":
            raise ConnectionError(f"closed with {output.get('code')}: {output.get('reason')}")
        return str(output.get("text", ""))

    async def close_output(self, wait: float = 5) -> dict[str, Any]:
        """The close message the server sent (after an accept), skipping frames before it."""
        while True:
            output = await self.communicator.receive_output(wait)
            if output["type"] == "websocket.close":
                return dict(output)

    async def close(self) -> None:
        await self.communicator.disconnect()

    @property
    def open_now(self) -> bool:
        return not self.communicator.future.done()


class Socket:
    """A real WebSocket: a closed socket raises websockets' ConnectionClosed."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @classmethod
    async def connect(cls, url: str, headers: dict[str, str], wait: float) -> Self:
        # No compression (daphne accepts none) and no size limit, as a browser reads.
        ws = await connect(
            url, additional_headers=headers, compression=None, max_size=None, open_timeout=wait
        )
        return cls(ws)

    async def send(self, payload: str | bytes) -> None:
        await self.ws.send(payload)

    async def recv(self, wait: float | None) -> str:
        return str(await asyncio.wait_for(self.ws.recv(), wait))

    async def close(self) -> None:
        await self.ws.close()

    @property
    def open_now(self) -> bool:
        return self.ws.state is State.OPEN


def own_origin(server: str | None) -> str:
    """The origin of a page on ``server`` (``http(s)://`` or ``ws(s)://``; None: in process)."""
    if server is None:
        return ORIGIN
    return "http" + server.removeprefix("ws") if server.startswith("ws") else server


class Tab:
    """One session page's socket, on ``server`` (a base URL, ``http://`` or ``ws://``) or, with
    None, on the app in this process. ``cookie`` is the ``Cookie`` header; ``origin`` defaults to
    the page's own (None sends none). With ``snapshot``, :meth:`open` reads the first frame as a
    page load shows it; with ``record`` False the tab keeps neither its frames nor the page
    model (the benchmark's crowds, whose client must stay cheap)."""

    def __init__(
        self,
        session_id: str,
        cookie: str,
        *,
        server: str | None = None,
        origin: str | None = SAME_ORIGIN,
        snapshot: bool = True,
        record: bool = True,
    ) -> None:
        self.session_id, self.cookie, self.server = session_id, cookie, server
        self.origin = own_origin(server) if origin == SAME_ORIGIN else origin
        self.path = f"/ws/sessions/{session_id}/"
        self.page_url = f"{own_origin(server)}/sessions/{session_id}/"
        self.snapshot, self.record = snapshot, record
        self.connection: Connection | None = None
        self.frames: list[str] = []  # every frame's text since open()
        self.page = Page()
        self.busy: bool | None = None  # the status line after the last frame
        self.received = 0  # frames since the socket opened, as static/playground.js counts
        self.first_frame: Frame | None = None

    async def open(self, wait: float = 30) -> Self:
        """Connect as the page does when it loads; with ``snapshot``, read its first frame."""
        self.frames, self.page, self.busy, self.received = [], Page(), None, 0
        self.first_frame = None
        if self.server is None:
            headers = [HOST, (b"cookie", self.cookie.encode())]
            if self.origin is not None:
                headers.append((b"origin", self.origin.encode()))
            self.connection = await InProcess.connect(self.path, headers, wait)
        else:
            url = "ws" + own_origin(self.server).removeprefix("http") + self.path
            upgrade = {"Cookie": self.cookie}
            if self.origin is not None:
                upgrade["Origin"] = self.origin
            self.connection = await Socket.connect(url, upgrade, wait)
        if self.snapshot:
            self.first_frame = await self.recv_frame(wait)
        return self

    async def recv_frame(self, wait: float | None = 15) -> Frame:
        """The next frame, applied and acknowledged as the page does."""
        assert self.connection is not None, "the tab is not open"
        text = await self.connection.recv(wait)
        frame = Frame(time.monotonic(), text, tuple(s == "true" for s in BUSY_RE.findall(text)))
        if frame.states:
            self.busy = frame.states[-1]
        if self.record:
            self.frames.append(text)
            self.page.apply(text)
        self.received += 1
        if self.received % ACK_EVERY == 0:
            await self.send_frame(json.dumps({"action": "ack", "received": self.received}))
        return frame

    async def recv(self, wait: float | None = 15) -> str:
        return (await self.recv_frame(wait)).text

    async def send_frame(self, payload: str | bytes) -> None:
        assert self.connection is not None, "the tab is not open"
        await self.connection.send(payload)

    async def send(self, message: str) -> float:
        """Submit the composer (as ``ws-send`` builds it); returns when it was sent."""
        headers = {
            "HX-Request": "true",
            "HX-Trigger": "composer",
            "HX-Trigger-Name": None,
            "HX-Target": "composer",
            "HX-Current-URL": self.page_url,
        }
        frame = json.dumps({"action": "send", "message": message, "HEADERS": headers})
        sent_at = time.monotonic()
        await self.send_frame(frame)
        return sent_at

    async def stop(self) -> None:
        await self.send_frame(json.dumps({"action": "stop", "HEADERS": {}}))

    async def until(self, pattern: str, wait: float = 20) -> str:
        """Frames until one matches ``pattern`` (a regular expression), each within ``wait``
        seconds of the last; returns that frame."""
        while True:
            frame = await self.recv(wait)
            if re.search(pattern, frame):
                return frame

    async def until_page(self, predicate: Callable[[Page], object], wait: float = 30) -> None:
        """Frames until ``predicate(page)`` holds (it may already), within ``wait`` s in all."""
        assert self.record, "the page is kept only with record=True"
        deadline = time.monotonic() + wait
        while not predicate(self.page):
            await self.recv(max(deadline - time.monotonic(), 0.01))

    async def run(self, message: str, wait: float = 30) -> Turn:
        """Send a message and read until its run ended: the status line went busy, then ready
        (each frame within ``wait`` seconds of the last)."""
        return await self._through_run(Turn(await self.send(message)), False, wait)

    async def until_idle(self, wait: float = 30) -> Turn:
        """Read until a run started and ended; a run under way counts as started."""
        return await self._through_run(Turn(time.monotonic()), self.busy is True, wait)

    async def _through_run(self, turn: Turn, started: bool, wait: float) -> Turn:
        while True:
            frame = await self.recv_frame(wait)
            turn.frames.append(frame)
            for busy in frame.states:
                if busy:
                    started = True
                elif started:
                    turn.ended_at = frame.at
                    return turn

    @property
    def open_now(self) -> bool:
        return self.connection is not None and self.connection.open_now

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()
