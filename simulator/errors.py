"""Request-scoped errors and their three wire shapes (WS envelope, flat SSE event, HTTP body)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Shape = Literal["nested", "flat", "no-status"]


@dataclass
class RequestError(Exception):
    status: int
    code: str | None
    message: str
    param: str | None = None
    type: str = "invalid_request_error"
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"

    @classmethod
    def invalid(cls, param: str | None, message: str, code: str | None = None) -> RequestError:
        return cls(400, code, message, param)

    @classmethod
    def not_found(cls, response_id: str) -> RequestError:
        return cls(
            400,
            "previous_response_not_found",
            f"Previous response with id '{response_id}' not found.",
            "previous_response_id",
        )

    @classmethod
    def connection_limit(cls, max_age_s: float) -> RequestError:
        return cls(
            400,
            "websocket_connection_limit_reached",
            f"Responses websocket connection limit reached ({max_age_s:g} seconds). "
            "Create a new websocket connection to continue.",
        )

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "type": self.type,
            "code": self.code,
            "message": self.message,
            "param": self.param,
        }
        if self.headers:
            error["headers"] = self.headers
        return error

    def ws_event(self, stream_id: str | None = None, shape: Shape = "nested") -> dict[str, Any]:
        """The WebSocket ``error`` frame; ``shape`` lets faults send the variants clients see."""
        if shape == "flat":
            event: dict[str, Any] = {
                "type": "error",
                "status": self.status,
                "code": self.code,
                "message": self.message,
                "param": self.param,
            }
        else:
            event = {"type": "error", "error": self.body()}
            if shape == "nested":
                event["status"] = self.status
        if stream_id is not None:
            event["stream_id"] = stream_id
        return event

    def sse_event(self, sequence_number: int) -> dict[str, Any]:
        """The flat ``error`` event of an SSE stream (no envelope, no status)."""
        return {
            "type": "error",
            "code": self.code,
            "message": self.message,
            "param": self.param,
            "sequence_number": sequence_number,
        }

    def http_body(self) -> dict[str, Any]:
        return {"error": self.body()}


# Codes a fault can send as an error frame, with the status and type the real API pairs them with.
KNOWN_CODES: dict[str, tuple[int, str, str | None]] = {
    "previous_response_not_found": (400, "invalid_request_error", "previous_response_id"),
    "invalid_stream_id": (400, "invalid_request_error", "stream_id"),
    "websocket_stream_limit_reached": (400, "invalid_request_error", "stream_id"),
    "websocket_connection_limit_reached": (400, "invalid_request_error", None),
    "rate_limit_exceeded": (429, "tokens", None),
    "insufficient_quota": (429, "insufficient_quota", None),
    "context_length_exceeded": (400, "invalid_request_error", "input"),
    "invalid_api_key": (401, "invalid_request_error", None),
    "server_error": (500, "server_error", None),
    "server_is_overloaded": (503, "server_error", None),
}


def injected(code: str) -> RequestError:
    """An error a fault asks for; unknown codes become a 500 that carries the code."""
    status, kind, param = KNOWN_CODES.get(code, (500, "server_error", None))
    message = MESSAGES.get(code, f"Simulated error: {code}.")
    # Only a rate limit is worth retrying; a quota error is not, so it carries no retry hint.
    headers = {"retry-after-ms": "1500"} if code == "rate_limit_exceeded" else {}
    return RequestError(status, code, message, param, kind, headers)


MESSAGES = {
    "rate_limit_exceeded": "Rate limit reached for requests. Please try again in 1.5s.",
    "insufficient_quota": "You exceeded your current quota, please check your plan and billing.",
    "server_is_overloaded": "The server is overloaded. Please try again later.",
}


def upgrade_refusal(status: int, retry_after_s: int | None) -> RequestError:
    """The HTTP error a refused upgrade (or HTTP request) answers with for an upgrade fault."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    error = RequestError(
        status, f"simulated_{status}", f"Simulated refusal ({status}).", None, kind
    )
    if retry_after_s is not None:
        error.headers = {"retry-after": str(retry_after_s)}
    return error
