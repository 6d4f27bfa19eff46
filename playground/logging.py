"""The log's shape and its last line of defence.

- :class:`RedactSecrets`: no bearer token, configured API key or share token is ever printed,
  whether in a line's message or in its extra fields.
- :data:`session_context`: the session a task or request works for, added to each of its lines
  by :class:`SessionContext` (``session=<id>`` in text, ``session_id`` in JSON). The session's id
  only: never a browser's session key, never a share token.
- :func:`console_formatter`: ``LOG_FORMAT=text`` (one readable line) or ``json`` (one JSON
  object per line: time, level, logger, message and the extra fields).
"""

from __future__ import annotations

import json
import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from django.conf import settings

BEARER_RE = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)
# A share token in a path: an old-form link (/s/<token>/), a link (/s/#<token>), a socket path.
SHARE_PATH_RE = re.compile(r"(/s/#?|/ws/share/)[A-Za-z0-9_-]+")
REDACTED = "[redacted]"

# Set where a request or a browser socket for a session starts (playground/access_log.py,
# playground/feed_socket.py) and where a session's run starts (agents/live/runner.py). A
# context variable, so every line of that task (and of the tasks and threads it starts) has it.
session_context: ContextVar[str] = ContextVar("session_context", default="")

# What every LogRecord has; anything else on a record came as ``extra=``.
STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
# Extra fields that go into a JSON line: plain values only. Django passes objects (the request,
# whose repr holds the query string, where a token could be) that must not be printed.
PLAIN = (str, int, float, bool, type(None))

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


def redact(text: str) -> str:
    """``text`` without bearer tokens, share tokens in paths or the configured API key."""
    cleaned = BEARER_RE.sub(rf"\g<1>{REDACTED}", text)
    cleaned = SHARE_PATH_RE.sub(rf"\g<1>{REDACTED}", cleaned)
    key = settings.OPENAI_API_KEY
    if key and len(key) >= 8:
        cleaned = cleaned.replace(key, REDACTED)
    return cleaned


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a caller added with ``extra=`` (plain values only)."""
    return {
        name: value
        for name, value in record.__dict__.items()
        if name not in STANDARD_ATTRIBUTES and isinstance(value, PLAIN)
    }


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        # The extra fields too: a JSON line prints them (an access line's path, for one).
        for name, value in extra_fields(record).items():
            if isinstance(value, str) and (clean := redact(value)) != value:
                setattr(record, name, clean)
        return True


class SessionContext(logging.Filter):
    """Adds ``session_id`` (from :data:`session_context`) to the lines of a session's work,
    unless the line names its session itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "session_id", ""):
            session_id = session_context.get()
            if session_id:
                record.session_id = session_id
        return True


class RedactedTraceback(logging.Formatter):
    def formatException(self, ei: ExcInfo) -> str:
        # A traceback's text may quote a URL or a header: the same scrubbing as a message.
        return redact(super().formatException(ei))


class TextFormatter(RedactedTraceback):
    """One line: time, level, logger, message, and ``session=<id>`` when it is about one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        session_id = getattr(record, "session_id", "")
        return f"{line} session={session_id}" if session_id else line


class JsonFormatter(RedactedTraceback):
    """One JSON object per line, for a log shipper: no line ever spans two."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in extra_fields(record).items():
            entry.setdefault(name, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # ASCII escapes: a lone surrogate or a newline from outside cannot break the line.
        return json.dumps(entry, default=str)


def console_formatter(kind: str = "text") -> logging.Formatter:
    """The formatter ``LOG_FORMAT`` names (settings.LOGGING builds it through this)."""
    return JsonFormatter() if kind == "json" else TextFormatter()
