"""One upstream response, whatever the transport: its request by the delta rule, its events,
its metrics, and the chain it leaves for the next step.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from agents.metrics import (
    UPSTREAM_BYTES_SENT,
    UPSTREAM_CACHED_TOKENS,
    UPSTREAM_INPUT_TOKENS,
    UPSTREAM_STEPS,
)
from agents.scalar_text import may_hold_surrogates, scrub
from agents.upstream.delta import Chain, Item, Stored, new_chain, route

Event = dict[str, Any]

TERMINAL = frozenset({"response.completed", "response.failed", "response.incomplete", "error"})


class UpstreamError(Exception):
    """The upstream could not be reached or dropped the socket; the message says what to do."""


class UpstreamRefused(UpstreamError):
    """The WebSocket upgrade was answered with an HTTP status (426/404: no WebSocket mode)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"The upstream refused the WebSocket (HTTP {status}).")
        self.status = status


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
    route: str = ""  # how the request found its parent (agents/upstream/delta.py ROUTES)
    lane: str = ""  # the stream_id it was sent on ("" the default lane)
    stored: bool = False  # asked with store=true: the upstream can find it again by id


class FrameRecorder(Protocol):
    """Where a session's upstream frames are noted for the inspector (agents/live/inspection.py)."""

    def record(self, direction: str, kind: str, sequence: Any, raw: str | bytes) -> None: ...


class ChainHolder(Protocol):
    """Where a transport keeps its chains, one per lane: the socket (WebSocket) or the session
    (HTTP, which has the default lane only)."""

    chains: dict[str | None, Chain]
    requests: int
    rotated_in: bool  # a rotation opened it and no step has run on it yet (only its warm-up)


def parse(raw: bytes | str) -> Any:
    """One event frame; None if it is not JSON. orjson first (a fifth of the stdlib's time per
    event); what it refuses and the stdlib accepts (lone surrogates, NaN) goes to the stdlib, so
    such frames mean what they always did."""
    try:
        return orjson.loads(raw)  # refuses lone surrogates: what it parses holds none
    except orjson.JSONDecodeError:
        pass
    try:
        event = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    # A lone surrogate cannot be saved, shown or sent on: it becomes U+FFFD.
    return scrub(event) if may_hold_surrogates(raw) else event


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
    lane: str | None = None  # the upstream lane (``stream_id``) of the branch being run
    stored: Stored | None = None  # a stored response of that branch, if any
    _sent_at: float = 0.0
    _extends: Chain | None = None  # the chain this response's request continued

    def request(self, generate: bool, *, chain: bool = True) -> dict[str, Any]:
        """The create body by the cheapest route (agents/upstream/delta.py). The lane's chain
        is unknown until this response completes."""
        chains = self.holder.chains if chain else {}
        chosen = route(chains, self.lane, self.fields, self.context, self.stored)
        self._extends = chosen.extends
        body: dict[str, Any] = {**self.fields, "input": chosen.input}
        if chosen.previous_response_id:
            body["previous_response_id"] = chosen.previous_response_id
        if self.lane is not None:
            body["stream_id"] = self.lane
        if not generate:
            body["generate"] = False
        self.metrics.mode = chosen.mode if generate else "warm"
        self.metrics.socket = "reused" if self.holder.requests else "fresh"
        if generate and self.holder.rotated_in:
            self.metrics.socket = "rotated"  # the first step on it, whenever the rotation was
            self.holder.rotated_in = False
        self.metrics.previous_response_id = chosen.previous_response_id or ""
        self.metrics.route = chosen.route
        self.metrics.lane = self.lane or ""
        self.metrics.stored = bool(self.fields.get("store"))
        self.holder.chains.pop(self.lane, None)
        self.holder.requests += 1
        return body

    def sent(self, payload: str) -> None:
        self.metrics.bytes_sent = len(payload.encode())
        self._sent_at = time.monotonic()
        UPSTREAM_STEPS.labels(mode=self.metrics.mode).inc()
        UPSTREAM_BYTES_SENT.inc(self.metrics.bytes_sent)
        if self.recorder is not None:
            self.recorder.record("out", "response.create", None, payload)

    def frames(self) -> AsyncIterator[bytes | str]:
        raise NotImplementedError

    async def __aiter__(self) -> AsyncIterator[Event]:
        async for raw in self.frames():
            event = parse(raw)
            if event is None:
                continue  # a garbage frame is skipped, as Codex does
            if not isinstance(event, dict):
                continue
            if self.recorder is not None:
                self.recorder.record("in", event.get("type", ""), event.get("sequence_number"), raw)
            self._observe(event)
            yield event
            if self.terminal is not None:
                return
        raise UpstreamError("The upstream ended the response before its terminal event.")

    def cut_short(self) -> None:
        """The response ended before its terminal event (stopped, or the transport broke): its
        time runs until now. Its usage stays unknown: only the terminal event reports it."""
        if self.terminal is None and self._sent_at:
            self.metrics.duration_ms = (time.monotonic() - self._sent_at) * 1000

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
        # A counter refuses to go down: an upstream's negative count must not fail the step.
        UPSTREAM_INPUT_TOKENS.inc(max(self.metrics.input_tokens, 0))
        UPSTREAM_CACHED_TOKENS.inc(max(self.metrics.cached_tokens, 0))
        if response.get("status") == "completed":
            # Output items come from output_item.done, not the terminal payload (item 9).
            items = [*self.context, *self.output]
            calls = frozenset(i["call_id"] for i in self.output if i.get("type") == "function_call")
            response_id = str(response["id"])
            self.holder.chains[self.lane] = (
                self._extends.then(self.fields, items, response_id, calls)
                if self._extends is not None
                else new_chain(self.fields, items, response_id, calls)
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
