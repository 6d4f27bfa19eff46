"""The browser socket's protocol: frames htmx's ws extension sends, validated into actions.

A frame is the JSON htmx builds from a ``ws-send`` form: its fields plus a ``HEADERS`` object.
Every problem is a :class:`FrameError` with a stable code; the socket stays open.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from agents.scalar_text import valid_text
from playground import jsonsafe

ACTIONS = (
    "send",
    "stop",
    "tool_output",
    "approve",
    "ack",
    "edit",
    "regenerate",
    "branch",
    "compare",
)
MAX_MESSAGE_CHARS = 100_000
RUN_ACTIONS = (
    "send",
    "edit",
    "regenerate",
    "compare",
)  # the actions that start a run (and are rate-limited)
MAX_POSITION_DIGITS = 9  # positions are PositiveIntegerFields: below 2**31

# How the browser sockets close. daphne (autobahn) can send only 1000 and 3000-4999 (1012 raises
# "invalid close code" and the socket dies as 1006), and htmx's ws extension reconnects by itself
# only after 1006/1011/1012/1013. So: refusals are 44xx, final (accept first: a refused
# handshake reaches the page as 1006, retried forever); "come back" is 40xx, on which
# static/playground.js reconnects (RECONNECT_CODES, mirrored there).
CLOSE_FORBIDDEN = 4403  # not yours, not staff, or another site's page
CLOSE_NOT_FOUND = 4404  # no such session, link or socket path
CLOSE_GONE = 4410  # the share link was revoked or expired while the socket was open
CLOSE_LIMITED = 4429  # too many guesses at share links
CLOSE_RESTART = 4012  # 1012's meaning, "service restart" (staff closed it): reconnect at once
CLOSE_RETRY = 4013  # 1013's meaning, "try again later" (Redis away): reconnect with backoff
RECONNECT_CODES = (CLOSE_RESTART, CLOSE_RETRY)

# Flow control: the page acknowledges every ACK_EVERY-th frame it applied; the server keeps at
# most ACK_WINDOW frames unacknowledged (playground/outbox.py) and coalesces meanwhile.
ACK_EVERY = 8
ACK_WINDOW = 32


def page_constants(request: object) -> dict[str, object]:
    """Template context: what static/playground.js reads from the page's <body>, so that the
    script restates none of these numbers."""
    return {
        "ack_every": ACK_EVERY,
        "max_message_chars": MAX_MESSAGE_CHARS,
        "reconnect_codes": " ".join(str(code) for code in RECONNECT_CODES),
    }


@dataclass(frozen=True)
class Action:
    name: str
    message: str = ""
    # The call an answer is for, or the position of the item an edit, a regenerate or a branch
    # switch is about.
    target: str = ""
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
        frame = jsonsafe.loads(text)
    except jsonsafe.JsonError as error:
        if error.code == "too_deep":
            limit = settings.MAX_JSON_DEPTH
            refusal = f"The frame nests deeper than {limit} levels; send a flat JSON object."
            raise FrameError("too_deep", refusal) from None
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
    if name in ("regenerate", "branch"):
        return Action(name, target=_position(frame))
    if name == "compare":
        rounds = frame.get("rounds", "1")
        if rounds not in ("1", "5", 1, 5):
            raise FrameError("invalid_frame", "A compare runs once or 5 times.")
        # The message field carries how many rounds: a compare has no text of its own here.
        return Action("compare", str(rounds), _position(frame))
    message = _message(frame)
    if name == "edit":
        return Action("edit", message, _position(frame))
    return Action("send", message)


def _position(frame: dict[str, object]) -> str:
    """An item's position, as the page's forms send it (a decimal string) or as a number."""
    value = frame.get("target")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise FrameError("invalid_frame", "Which message? The frame has no target.")
    text = str(value).strip()
    if not text.isascii() or not text.isdigit() or len(text) > MAX_POSITION_DIGITS:
        raise FrameError("invalid_frame", "A target is a message's position: a whole number.")
    return str(int(text))


def _message(frame: dict[str, object]) -> str:
    message = frame.get("message")
    if not isinstance(message, str) or not message.strip():
        raise FrameError("empty_message", "Type a message before sending.")
    if len(message) > MAX_MESSAGE_CHARS:
        raise FrameError("message_too_long", f"Messages are limited to {MAX_MESSAGE_CHARS} chars.")
    _check_text(message, "The message")
    return message.strip()


def _check_text(text: str, what: str) -> None:
    """Refuse text no UTF-8 encoder takes (a lone surrogate): once saved, it broke the page."""
    if not valid_text(text):
        raise FrameError("invalid_text", f"{what} {jsonsafe.INVALID_TEXT}")


def _answer(name: str, frame: dict[str, object]) -> Action:
    call_id = frame.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise FrameError("invalid_frame", "Which call? The frame has no call_id.")
    _check_text(call_id, "The call_id")
    if name == "approve":
        decision = frame.get("decision")
        if decision not in ("yes", "no"):
            raise FrameError("invalid_frame", "An approval's decision is yes or no.")
        return Action(name, str(decision), call_id)
    output = frame.get("output")
    if not isinstance(output, str):
        raise FrameError("invalid_frame", "A tool output must be text.")
    _check_text(output, "The tool output")
    return Action(name, output, call_id)


def ack_count(text: str | None, data: bytes | None) -> int | None:
    """The count of a valid ack frame, else None: all a read-only socket accepts."""
    try:
        action = parse_frame(text, data)
    except FrameError:
        return None
    return action.received if action.name == "ack" else None
