"""The WebSocket mode's client frames: what is refused before a frame is acted on, and the
answer to ``response.steer`` (which the simulated model never supports).
"""

from __future__ import annotations

import json
from typing import Any

from simulator.engine import Event
from simulator.errors import RequestError


class FrameRefused(Exception):
    """A frame that is not a JSON object with a string ``type``; ``kind`` is what the
    connection log notes, ``error`` what the client is sent."""

    def __init__(self, kind: str, error: RequestError) -> None:
        super().__init__(error.message)
        self.kind = kind
        self.error = error


def read_frame(text: str | None, data: bytes | None, size: int, limit: int) -> dict[str, Any]:
    """The frame as a JSON object with a string ``type``, or FrameRefused."""
    if data is not None:
        message = "Binary frames are not supported; send JSON text frames."
        raise FrameRefused("binary", RequestError.invalid(None, message, "invalid_event"))
    if size > limit:
        message = f"Event of {size} bytes exceeds the limit of {limit} bytes."
        raise FrameRefused("oversize", RequestError(413, "frame_too_large", message, None))
    try:
        frame = json.loads(text or "")
    except ValueError:
        message = "We could not parse the JSON of your event; send one JSON object per frame."
        raise FrameRefused(
            "invalid_json", RequestError.invalid(None, message, "invalid_json")
        ) from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        message = "Each event must be a JSON object with a string 'type'."
        raise FrameRefused("invalid_event", RequestError.invalid("type", message, "invalid_event"))
    return frame


def steer_failed(frame: dict[str, Any], *, running: bool, known: bool) -> Event:
    """``response.steer.failed`` for a steer at a running (``running``), finished (``known``)
    or unknown response."""
    target = frame.get("previous_response_id")
    steer = {"input": frame.get("input"), "previous_response_id": target}
    if not isinstance(target, str) or frame.get("input") in (None, "", []):
        code = "invalid_input"
        message = "response.steer needs 'previous_response_id' and non-empty 'input'."
    elif running:
        code, message = "steering_not_supported", "The simulated model does not support steering."
    elif known:
        code, message = "response_already_completed", f"Response '{target}' has already completed."
    else:
        code = "response_not_found"
        message = f"Response '{target}' is not available on this connection."
    return {
        "type": "response.steer.failed",
        "sequence_number": 0,
        "error": {"code": code, "message": message, "type": "invalid_request_error"},
        "steer": steer,
    }
