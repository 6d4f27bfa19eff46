"""A session's upstream socket: the SDK's ``responses.connect()``, its chain, the delta rule.

The chain (what the upstream's connection cache holds) lives on the socket object, so a new socket
starts with a full-context create by construction (client checklist §4, items 1-12).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

import websockets
from openai.resources.responses.responses import AsyncResponsesConnection

from agents.clients import shared_client
from agents.scalar_text import may_hold_surrogates, scrub

log = logging.getLogger(__name__)

Item = dict[str, Any]
Event = dict[str, Any]

TERMINAL = frozenset({"response.completed", "response.failed", "response.incomplete", "error"})
# Large `response.completed` frames exceed the websockets default of 1 MiB.
MAX_FRAME_BYTES = 64 * 1024 * 1024
CONNECT_TIMEOUT = 15.0
# Per-event timeout while a response streams (reasoning models can think for minutes).
EVENT_TIMEOUT = 300.0
# Fields that describe an item's delivery, not its content (never part of the comparison).
VOLATILE = frozenset({"id", "status", "annotations", "logprobs"})


class UpstreamError(Exception):
    """The upstream could not be reached or dropped the socket; the message says what to do."""


class UpstreamRefused(UpstreamError):
    """The WebSocket upgrade was answered with an HTTP status (426/404: no WebSocket mode)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"The upstream refused the WebSocket (HTTP {status}).")
        self.status = status


def fingerprint(value: Any) -> str:
    """Canonical JSON: key order, delivery fields and nulls do not count."""
    return json.dumps(_strip(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE and v is not None}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


@dataclass(frozen=True)
class Chain:
    """The upstream's cached state after a completed response on this socket."""

    fields: str  # fingerprint of the request's non-input fields
    context: tuple[str, ...]  # fingerprints of input + output items
    response_id: str
    open_calls: frozenset[str]  # call_ids of function calls the next delta must answer


@dataclass(frozen=True)
class Plan:
    mode: str  # "create" or "delta"
    input: list[Item]
    previous_response_id: str | None


def plan(chain: Chain | None, fields: dict[str, Any], context: Sequence[Item]) -> Plan:
    """Delta only when the socket's last response completed with equal fields and the new
    context extends it; otherwise the full context."""
    if chain is not None and chain.fields == fingerprint(fields):
        size = len(chain.context)
        prefix = tuple(fingerprint(item) for item in context[:size])
        if len(context) >= size and prefix == chain.context:
            delta = list(context[size:])
            answered = {i.get("call_id") for i in delta if i.get("type") == "function_call_output"}
            if chain.open_calls <= answered:
                return Plan("delta", delta, chain.response_id)
    return Plan("create", list(context), None)


@dataclass
class StepMetrics:
    mode: str = "create"
    socket: str = "fresh"
    bytes_sent: int = 0
    ttft_ms: float | None = None
    duration_ms: float = 0.0
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    previous_response_id: str = ""


class FrameRecorder(Protocol):
    """Where a session's upstream frames are noted for the inspector (agents/inspection.py)."""

    def record(self, direction: str, kind: str, sequence: Any, raw: str | bytes) -> None: ...


class ChainHolder(Protocol):
    """Where a transport keeps its chain: the socket (WebSocket) or the session (HTTP)."""

    chain: Chain | None
    requests: int


@dataclass
class UpstreamSocket:
    connection: AsyncResponsesConnection
    opened: float = field(default_factory=time.monotonic)
    requests: int = 0
    chain: Chain | None = None

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
class UpstreamTurn:
    """One response: its request (delta or full), then its raw events until the terminal one."""

    holder: ChainHolder
    fields: dict[str, Any]
    context: list[Item]
    metrics: StepMetrics = field(default_factory=StepMetrics)
    output: list[Item] = field(default_factory=list)
    terminal: Event | None = None
    created_id: str = ""
    recorder: FrameRecorder | None = None
    _sent_at: float = 0.0

    def request(self, generate: bool, *, chain: bool = True) -> dict[str, Any]:
        """The create body by the delta rule. The holder's chain is unknown until it completes."""
        chosen = plan(self.holder.chain if chain else None, self.fields, self.context)
        body: dict[str, Any] = {**self.fields, "input": chosen.input}
        if chosen.previous_response_id:
            body["previous_response_id"] = chosen.previous_response_id
        if not generate:
            body["generate"] = False
        self.metrics.mode = chosen.mode if generate else "warm"
        self.metrics.socket = "reused" if self.holder.requests else "fresh"
        self.metrics.previous_response_id = chosen.previous_response_id or ""
        self.holder.chain = None
        self.holder.requests += 1
        return body

    def sent(self, payload: str) -> None:
        self.metrics.bytes_sent = len(payload.encode())
        self._sent_at = time.monotonic()
        if self.recorder is not None:
            self.recorder.record("out", "response.create", None, payload)

    def frames(self) -> AsyncIterator[bytes | str]:
        raise NotImplementedError

    async def __aiter__(self) -> AsyncIterator[Event]:
        async for raw in self.frames():
            try:
                event = json.loads(raw)
            except (ValueError, RecursionError):
                continue  # a garbage frame is skipped, as Codex does
            if not isinstance(event, dict):
                continue
            if may_hold_surrogates(raw):
                # A lone surrogate cannot be saved, shown or sent on: it becomes U+FFFD.
                event = scrub(event)
            if self.recorder is not None:
                self.recorder.record("in", event.get("type", ""), event.get("sequence_number"), raw)
            self._observe(event)
            yield event
            if self.terminal is not None:
                return
        raise UpstreamError("The upstream ended the response before its terminal event.")

    def _observe(self, event: Event) -> None:
        kind = event.get("type", "")
        if self.metrics.ttft_ms is None and kind.endswith(".delta"):
            self.metrics.ttft_ms = (time.monotonic() - self._sent_at) * 1000
        if kind == "response.created":
            self.created_id = str(event["response"].get("id", ""))
        elif kind == "response.output_item.done":
            self.output.append(event["item"])
        elif kind in TERMINAL:
            self.terminal = event
            self.metrics.duration_ms = (time.monotonic() - self._sent_at) * 1000
            if kind != "error":
                self._account(event["response"])

    def _account(self, response: dict[str, Any]) -> None:
        usage = response.get("usage") or {}
        self.metrics.input_tokens = int(usage.get("input_tokens") or 0)
        details = usage.get("input_tokens_details") or {}
        self.metrics.cached_tokens = int(details.get("cached_tokens") or 0)
        self.metrics.output_tokens = int(usage.get("output_tokens") or 0)
        if response.get("status") == "completed":
            # Output items come from output_item.done, not the terminal payload (item 9).
            items = [*self.context, *self.output]
            calls = {i["call_id"] for i in self.output if i.get("type") == "function_call"}
            self.holder.chain = Chain(
                fingerprint(self.fields),
                tuple(fingerprint(i) for i in items),
                str(response["id"]),
                frozenset(calls),
            )

    @property
    def response_id(self) -> str:
        """The response's id, known from ``response.created`` on (even if it never finished)."""
        if self.terminal is None or self.terminal.get("type") == "error":
            return self.created_id
        return str(self.terminal["response"].get("id", ""))

    @property
    def error(self) -> dict[str, Any]:
        """The error of a request-scoped error event or a failed response (empty otherwise)."""
        if self.terminal is None:
            return {}
        error = self.terminal.get("error") or (self.terminal.get("response") or {}).get("error")
        return dict(error or {})

    @property
    def status(self) -> int:
        """The HTTP-equivalent status of an error event (0 when there is none)."""
        if self.terminal is None or self.terminal.get("type") != "error":
            return 0
        return int(self.terminal.get("status") or self.terminal.get("status_code") or 400)


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
        while True:
            try:
                yield await asyncio.wait_for(self.socket.connection.recv_bytes(), EVENT_TIMEOUT)
            except TimeoutError as exc:
                raise UpstreamError(
                    f"The upstream sent nothing for {EVENT_TIMEOUT:.0f} s."
                ) from exc
            except websockets.ConnectionClosed as exc:
                raise UpstreamError("The upstream closed the connection mid-response.") from exc


class UpstreamSession:
    """The one upstream socket of a session, opened on demand; one response in flight at a time."""

    transport = "websocket"

    def __init__(self, base_url: str, api_key: str) -> None:
        self.client = shared_client(base_url, api_key)
        self.socket: UpstreamSocket | None = None
        self.sockets_opened = 0
        self.recorder: FrameRecorder | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self.socket is not None

    def forget_chain(self) -> None:
        """The upstream lost our parent (a cache miss): the next request is a full create."""
        if self.socket is not None:
            self.socket.chain = None

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
        self, fields: dict[str, Any], context: list[Item], *, generate: bool = True
    ) -> AsyncIterator[UpstreamTurn]:
        """Send one create (delta or full) and hand back the turn to iterate.

        A turn left before its terminal event (stop, error, cancellation) discards the socket, so
        no frame of it can reach a later turn.
        """
        async with self._lock:
            if self.socket is None:
                self.socket = await self._open()
            socket = self.socket
            turn = SocketTurn(socket, fields, context, recorder=self.recorder, socket=socket)
            try:
                await turn.send(generate)
                yield turn
            finally:
                if turn.terminal is None:
                    self.discard(socket)

    async def prewarm(self, fields: dict[str, Any], context: list[Item]) -> UpstreamTurn | None:
        """``generate: false`` with the session's settings and transcript, unless the socket's
        chain already serves them (the next step would be a delta anyway)."""
        if self.socket is not None and plan(self.socket.chain, fields, context).mode == "delta":
            return None
        async with self.turn(fields, context, generate=False) as turn:
            async for _ in turn:
                pass
        return turn

    async def rotate(self, fields: dict[str, Any], context: list[Item], max_age: float) -> bool:
        """Make-before-break: replace a socket older than ``max_age``, at a step boundary.

        The new socket is opened and warmed with the full context first, so the next step is a
        delta on it; only then is the old one closed. False when no rotation was due.
        """
        old = self.socket
        if old is None or old.age < max_age:
            return False
        async with self._lock:
            fresh = await self._open()
            warm = SocketTurn(fresh, fields, context, recorder=self.recorder, socket=fresh)
            try:
                await warm.send(generate=False)
                async for _ in warm:
                    pass
            except BaseException:
                fresh.abort()
                raise
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
