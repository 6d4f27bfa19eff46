"""A session's upstream socket: the SDK's ``responses.connect()``, its chain, the delta rule.

The chain (what the upstream's connection cache holds) lives on the socket object, so a new socket
starts with a full-context create by construction (client checklist §4, items 1-12).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import websockets
from openai.resources.responses.responses import AsyncResponsesConnection

from agents.upstream.clients import shared_client
from agents.upstream.delta import Chain, Item, Stored, route
from agents.upstream.turn import FrameRecorder, UpstreamError, UpstreamRefused, UpstreamTurn

log = logging.getLogger(__name__)

# Large `response.completed` frames exceed the websockets default of 1 MiB.
MAX_FRAME_BYTES = 64 * 1024 * 1024
CONNECT_TIMEOUT = 15.0
# Upgrade statuses that mean "no WebSocket mode here": fall back to HTTP at once (item 23).
NO_WEBSOCKET = frozenset({404, 405, 426})
# Named lanes (stream_id) one connection may use (websocket_stream_limit_reached past it).
MAX_NAMED_LANES = 32
# Per-event timeout while a response streams (reasoning models can think for minutes).
EVENT_TIMEOUT = 300.0


@dataclass
class UpstreamSocket:
    connection: AsyncResponsesConnection
    opened: float = field(default_factory=time.monotonic)
    requests: int = 0
    chains: dict[str | None, Chain] = field(default_factory=dict)  # by stream_id
    # Which stream_id each run's lane has, least recently used first.
    lanes: OrderedDict[str, str] = field(default_factory=OrderedDict)
    rotated_in: bool = False

    def lane_for(self, wanted: str | None, named: bool) -> str | None:
        """The stream_id for the lane ``wanted`` (None: the default lane, also when the upstream
        has no named lanes). A connection may name only ``MAX_NAMED_LANES`` lanes: past that,
        the least recently used one's stream_id is reused, its cached response forgotten."""
        if wanted is None or not named:
            return None
        if wanted in self.lanes:
            self.lanes.move_to_end(wanted)
            return self.lanes[wanted]
        if len(self.lanes) < MAX_NAMED_LANES:
            stream_id = f"l{len(self.lanes)}"
        else:
            _, stream_id = self.lanes.popitem(last=False)
            self.chains.pop(stream_id, None)
        self.lanes[wanted] = stream_id
        return stream_id

    @property
    def age(self) -> float:
        return time.monotonic() - self.opened

    def abort(self) -> None:
        """Drop the TCP connection at once: no close handshake, no frame of this socket left."""
        # The SDK has no public abort; its websockets connection exposes the transport.
        transport = getattr(self.connection._connection, "transport", None)
        if transport is not None:
            transport.abort()


@dataclass
class SocketTurn(UpstreamTurn):
    socket: UpstreamSocket | None = None

    async def send(self, generate: bool) -> None:
        assert self.socket is not None
        payload = json.dumps({"type": "response.create", **self.request(generate)})
        self.sent(payload)
        await self.socket.connection.send_raw(payload)

    async def frames(self) -> AsyncIterator[bytes | str]:
        assert self.socket is not None
        socket, loop = self.socket, asyncio.get_running_loop()
        watchdog = Watchdog(loop, socket.abort)
        try:
            while True:
                try:
                    frame = await socket.connection.recv_bytes()
                except websockets.ConnectionClosed as exc:
                    if watchdog.fired:
                        raise UpstreamError(
                            f"The upstream sent nothing for {EVENT_TIMEOUT:.0f} s."
                        ) from exc
                    raise UpstreamError("The upstream closed the connection mid-response.") from exc
                watchdog.last = loop.time()
                yield frame
        finally:
            watchdog.cancel()


class Watchdog:
    """One timer per response, not one per event (``asyncio.wait_for`` around every receive
    was a sixth of the relay's CPU): it wakes every ``EVENT_TIMEOUT`` and aborts the socket
    only if no event came in the last ``EVENT_TIMEOUT``; the receive then fails at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop, abort: Callable[[], None]) -> None:
        self.loop, self.abort = loop, abort
        self.last = loop.time()
        self.fired = False
        self._timer = loop.call_at(self.last + EVENT_TIMEOUT, self._check)

    def _check(self) -> None:
        due = self.last + EVENT_TIMEOUT
        if self.loop.time() < due:
            self._timer = self.loop.call_at(due, self._check)
            return
        self.fired = True
        self.abort()

    def cancel(self) -> None:
        self._timer.cancel()


class UpstreamSession:
    """The one upstream socket of a session, opened on demand; one response in flight at a time."""

    transport = "websocket"

    def __init__(self, base_url: str, api_key: str) -> None:
        self.client = shared_client(base_url, api_key)
        self.socket: UpstreamSocket | None = None
        self.sockets_opened = 0
        self.recorder: FrameRecorder | None = None
        # False once the upstream refused a stream_id (the GA/xAI model: one lane per socket).
        self.named_lanes = True
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self.socket is not None

    def forget_chain(self) -> None:
        """The upstream lost our parent (a cache miss): the next request is a full create."""
        if self.socket is not None:
            self.socket.chains.clear()

    def refuse_lanes(self) -> bool:
        """The upstream refused a ``stream_id``: every branch uses the default lane from now on.
        False if it already did (the refusal was about something else)."""
        asked, self.named_lanes = self.named_lanes, False
        self.forget_chain()
        return asked

    async def _open(self) -> UpstreamSocket:
        manager = self.client.responses.connect(
            # No permessage-deflate: on the links an upstream is reached over, it cost more CPU
            # per event and memory per socket (~0.8 MiB down to ~65 KiB) than it saved.
            websocket_connection_options={"max_size": MAX_FRAME_BYTES, "compression": None}
        )
        try:
            connection = await asyncio.wait_for(manager.enter(), CONNECT_TIMEOUT)
        except websockets.InvalidStatus as exc:
            raise UpstreamRefused(exc.response.status_code) from exc
        except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
            raise UpstreamError(f"The upstream cannot be reached: {type(exc).__name__}.") from exc
        self.sockets_opened += 1
        return UpstreamSocket(connection)

    @asynccontextmanager
    async def turn(
        self,
        fields: dict[str, Any],
        context: list[Item],
        *,
        generate: bool = True,
        lane: str | None = None,
        stored: Stored | None = None,
    ) -> AsyncIterator[UpstreamTurn]:
        """Send one create (delta or full) and hand back the turn to iterate.

        A turn left before its terminal event (stop, error, cancellation) discards the socket, so
        no frame of it can reach a later turn.
        """
        async with self._lock:
            if self.socket is None:
                self.socket = await self._open()
            socket = self.socket
            turn = SocketTurn(
                socket,
                fields,
                context,
                recorder=self.recorder,
                lane=socket.lane_for(lane, self.named_lanes),
                stored=stored,
                socket=socket,
            )
            try:
                await turn.send(generate)
                yield turn
            finally:
                if turn.terminal is None:
                    self.discard(socket)

    async def prewarm(
        self,
        fields: dict[str, Any],
        context: list[Item],
        lane: str | None = None,
        stored: Stored | None = None,
    ) -> UpstreamTurn | None:
        """``generate: false`` with the session's settings and branch on its lane, unless the
        socket's chains already serve them (the next step would be a delta anyway)."""
        if self.socket is not None:
            lane = self.socket.lane_for(lane, self.named_lanes)
            if route(self.socket.chains, lane, fields, context).mode == "delta":
                return None
        async with self.turn(fields, context, generate=False, lane=lane, stored=stored) as turn:
            async for _ in turn:
                pass
        return turn

    async def rotate(
        self, fields: dict[str, Any], context: list[Item], max_age: float, lane: str | None = None
    ) -> bool:
        """Make-before-break: replace a socket older than ``max_age``, at a step boundary.

        The new socket is opened and warmed with the full context first, so the next step is a
        delta on it; only then is the old one closed. False when no rotation was due.
        """
        old = self.socket
        if old is None or old.age < max_age:
            return False
        async with self._lock:
            fresh = await self._open()
            named = fresh.lane_for(lane, self.named_lanes)
            warm = SocketTurn(
                fresh, fields, context, recorder=self.recorder, lane=named, socket=fresh
            )
            try:
                await warm.send(generate=False)
                async for _ in warm:
                    pass
            except BaseException:
                fresh.abort()
                raise
            fresh.rotated_in = True
            self.socket = fresh
        with suppress(Exception):
            await asyncio.wait_for(old.connection.close(), 2)
        old.abort()
        return True

    def discard(self, socket: UpstreamSocket | None = None) -> None:
        """Abort the socket (or the given one, if it is still current)."""
        current = self.socket
        if current is None or (socket is not None and socket is not current):
            return
        self.socket = None
        current.abort()

    async def close(self) -> None:
        socket, self.socket = self.socket, None
        if socket is not None:
            with suppress(Exception):
                await asyncio.wait_for(socket.connection.close(), 2)
            socket.abort()
