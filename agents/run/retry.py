"""When a failed upstream step is tried again, and after how long; what a terminal event means.

Client checklist items 20-22 (docs/client-checklist.md): the server's hint wins, else an
exponential backoff with jitter; rate limits and server errors are retried, a refused key not.
"""

from __future__ import annotations

import random
import re
from typing import Any

from agents.upstream.turn import UpstreamTurn

RETRYABLE_CODES = frozenset({"rate_limit_exceeded", "server_error", "server_is_overloaded"})
RETRY_IN_RE = re.compile(r"try again in (\d+(?:\.\d+)?)\s*(ms|s)", re.IGNORECASE)
MAX_SERVER_DELAY = 30.0


def backoff(attempt: int, error: dict[str, Any]) -> float:
    """Seconds before retry ``attempt`` (1-based): the server's hint wins, else 200 ms·2ⁿ ±10 %."""
    headers = error.get("headers") or {}
    if "retry-after-ms" in headers:
        return min(float(headers["retry-after-ms"]) / 1000, MAX_SERVER_DELAY)
    if "retry-after" in headers:
        return min(float(headers["retry-after"]), MAX_SERVER_DELAY)
    hint = RETRY_IN_RE.search(str(error.get("message", "")))
    if hint:
        value = float(hint.group(1)) / (1000 if hint.group(2).lower() == "ms" else 1)
        return min(value, MAX_SERVER_DELAY)
    return float(0.2 * 2 ** (attempt - 1) * random.uniform(0.9, 1.1))


def retryable(turn: UpstreamTurn) -> bool:
    return turn.status >= 500 or turn.status == 429 or turn.error.get("code") in RETRYABLE_CODES


def error_kind(turn: UpstreamTurn) -> str:
    """The turn's error event as agents/metrics.py ERROR_KINDS counts it."""
    code = turn.error.get("code")
    if code == "previous_response_not_found":
        return "cache_miss"
    if code == "websocket_connection_limit_reached":
        return "connection_limit"
    return "retryable" if retryable(turn) else "other"


def outcome(terminal: dict[str, Any]) -> tuple[str, str]:
    kind = terminal.get("type")
    if kind == "response.completed":
        return "completed", ""
    if kind == "error":
        error = terminal.get("error") or {}
        return "failed", f"The upstream answered {error.get('code')}: {error.get('message')}"
    response = terminal.get("response") or {}
    if kind == "response.incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason", "unknown")
        return "incomplete", f"The reply is incomplete ({reason})."
    error = response.get("error") or {}
    return "failed", f"The upstream failed: {error.get('code')}: {error.get('message')}"
