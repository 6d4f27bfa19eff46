"""What the simulator saw: per-connection logs and the context oracle (tests and HTTP read them)."""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Mode = Literal["warm", "create", "delta"]
CacheResult = Literal["hit", "miss", "hydrated", "none"]
SECRET_HEADERS = frozenset({"authorization", "api-key", "cookie", "x-api-key"})
LOG_LIMIT = 10_000  # frames and requests kept per connection; older ones are dropped
SEND_LOG_LIMIT = 100_000  # delta send times kept per connection (``record_sends``)
# One sent delta: request index, sequence_number, CLOCK_MONOTONIC seconds, item_id, delta.
SentDelta = tuple[int, int, float, str, str]


@dataclass
class RequestRecord:
    """One response.create (or HTTP request) and what became of it."""

    index: int
    received_ms: float  # since the connection opened
    bytes: int
    mode: Mode
    previous_response_id: str | None
    stream_id: str | None = None
    response_id: str | None = None
    cache: CacheResult = "none"
    status: str = "queued"  # completed, incomplete, failed, error:<code>, interrupted
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    context_hash: str | None = None
    context_items: int = 0
    charged_ms: float = 0.0  # model time the cost model charged (unscaled), incl. transport
    first_event_ms: float | None = None
    first_token_ms: float | None = None
    done_ms: float | None = None


@dataclass
class ConnectionLog:
    id: str
    transport: Literal["websocket", "http"]
    headers: dict[str, str]
    query: str
    opened_at: float = field(default_factory=time.time)
    opened_mono: float = field(default_factory=time.monotonic)
    closed: bool = False
    close_reason: str = ""
    # Every client frame and request, in order (the latest LOG_LIMIT of a long-lived connection).
    frames: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=LOG_LIMIT))
    requests: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=LOG_LIMIT))
    events_sent: int = 0
    # With ``record_sends``: every delta event sent, timed just before it went to the socket.
    # time.monotonic() is the system-wide CLOCK_MONOTONIC on Linux, so a client on the same host
    # can subtract it from its own receive times.
    sends: deque[SentDelta] | None = None

    def now_ms(self) -> float:
        return (time.monotonic() - self.opened_mono) * 1000.0

    def sent(self, request: int, event: dict[str, Any], at: float) -> None:
        """Log a sent event if it is a delta and send times are recorded."""
        if self.sends is not None and "delta" in event:
            item = str(event.get("item_id", ""))
            self.sends.append((request, event["sequence_number"], at, item, str(event["delta"])))

    def frame(self, kind: str, size: int, note: str = "") -> None:
        self.frames.append(
            {"t_ms": round(self.now_ms(), 3), "type": kind, "bytes": size, "note": note}
        )

    def summary(self) -> dict[str, Any]:
        hits = sum(1 for r in self.requests if r.cache == "hit")
        chained = sum(1 for r in self.requests if r.mode == "delta")
        return {
            "id": self.id,
            "transport": self.transport,
            "opened_at": self.opened_at,
            "closed": self.closed,
            "close_reason": self.close_reason,
            "requests": len(self.requests),
            "cache_hits": hits,
            "chained_requests": chained,
            "events_sent": self.events_sent,
        }

    def as_dict(self) -> dict[str, Any]:
        full = {
            **self.summary(),
            "headers": self.headers,
            "query": self.query,
            "frames": list(self.frames),
            "log": [asdict(r) for r in self.requests],
        }
        if self.sends is not None:
            full["sends"] = [list(sent) for sent in self.sends]
        return full


def redact(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Request headers for the log, with every credential replaced."""
    out: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        out[name] = "[redacted]" if name in SECRET_HEADERS else raw_value.decode("latin-1")
    return out


@dataclass(frozen=True)
class OracleEntry:
    response_id: str
    connection_id: str
    context_hash: str
    context_items: int
    mode: Mode
    cache: CacheResult


class Introspection:
    """Bounded logs of recent connections and the oracle entry of every recent response."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.connections: OrderedDict[str, ConnectionLog] = OrderedDict()
        self.oracle: OrderedDict[str, OracleEntry] = OrderedDict()
        self._ids = itertools.count(1)
        self.counters: dict[str, int] = {"websocket_connections": 0, "http_requests": 0}

    def open(
        self,
        transport: Literal["websocket", "http"],
        headers: dict[str, str],
        query: str,
        record_sends: bool = False,
    ) -> ConnectionLog:
        log = ConnectionLog(f"conn_{next(self._ids)}", transport, headers, query)
        if record_sends:
            log.sends = deque(maxlen=SEND_LOG_LIMIT)
        key = "websocket_connections" if transport == "websocket" else "http_requests"
        self.counters[key] += 1
        self.connections[log.id] = log
        while len(self.connections) > self.capacity:
            self.connections.popitem(last=False)
        return log

    def record(self, entry: OracleEntry) -> None:
        self.oracle[entry.response_id] = entry
        while len(self.oracle) > self.capacity * 100:
            self.oracle.popitem(last=False)

    def open_websockets(self) -> int:
        return sum(
            1 for c in self.connections.values() if c.transport == "websocket" and not c.closed
        )
