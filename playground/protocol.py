"""The browser socket's protocol: frames htmx's ws extension sends, validated into actions.

A frame is the JSON htmx builds from a ``ws-send`` form: its fields plus a ``HEADERS`` object.
Every problem is a :class:`FrameError` with a stable code; the socket stays open.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.conf import settings

ACTIONS = ("send", "stop", "tool_output", "approve", "ack")
MAX_MESSAGE_CHARS = 100_000


@dataclass(frozen=True)
class Action:
    name: str
    message: str = ""
    call_id: str = ""
    received: int = 0  # an ack: how many frames the page has applied


class FrameError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_frame(text: str | None, data: bytes | None) -> Action:
    if text is None:
        raise FrameError("binary_frame", "Binary frames are not accepted; send JSON text.")
    if len(text.encode()) > settings.MAX_FRAME_BYTES:
        limit = settings.MAX_FRAME_BYTES // 1024
        raise FrameError("frame_too_large", f"The message is larger than {limit} KiB.")
    try:
        frame = json.loads(text)
    except ValueError:
        raise FrameError("invalid_json", "The frame is not valid JSON.") from None
    if not isinstance(frame, dict):
        raise FrameError("invalid_frame", "The frame must be a JSON object.")
    name = frame.get("action")
    if name not in ACTIONS:
        raise FrameError("unknown_action", f"Unknown action; expected one of {', '.join(ACTIONS)}.")
    if name == "ack":
        received = frame.get("received")
        if not isinstance(received, int) or isinstance(received, bool) or received < 0:
            raise FrameError("invalid_frame", "An ack counts the frames received: an integer.")
        return Action("ack", received=received)
    if name == "stop":
        return Action("stop")
    if name in ("tool_output", "approve"):
        return _answer(name, frame)
    message = frame.get("message")
    if not isinstance(message, str) or not message.strip():
        raise FrameError("empty_message", "Type a message before sending.")
    if len(message) > MAX_MESSAGE_CHARS:
        raise FrameError("message_too_long", f"Messages are limited to {MAX_MESSAGE_CHARS} chars.")
    return Action("send", message.strip())


def _answer(name: str, frame: dict[str, object]) -> Action:
    call_id = frame.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise FrameError("invalid_frame", "Which call? The frame has no call_id.")
    if name == "approve":
        decision = frame.get("decision")
        if decision not in ("yes", "no"):
            raise FrameError("invalid_frame", "An approval's decision is yes or no.")
        return Action(name, str(decision), call_id)
    output = frame.get("output")
    if not isinstance(output, str):
        raise FrameError("invalid_frame", "A tool output must be text.")
    return Action(name, output, call_id)


def ack_count(text: str | None, data: bytes | None) -> int | None:
    """The count of a valid ack frame, else None: all a read-only socket accepts."""
    try:
        action = parse_frame(text, data)
    except FrameError:
        return None
    return action.received if action.name == "ack" else None
