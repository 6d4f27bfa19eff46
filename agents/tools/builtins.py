"""Server-side tool implementations. Each returns text for the model; problems are ToolErrors."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx2 as httpx  # the HTTP client the openai SDK ships with
from django.conf import settings

from agents.models import Note
from agents.tools.calculator import CalculatorError, calculate

MAX_NOTE_CHARS = 10_000
HTTP_TIMEOUT = 10.0


class ToolError(Exception):
    """A problem the model should read (and can correct), returned to it as the tool's output."""


@dataclass(frozen=True)
class Builtin:
    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[str, dict[str, Any]], Awaitable[str]]  # (session id, arguments) -> output


async def _calculator(session_id: str, args: dict[str, Any]) -> str:
    try:
        return str(calculate(str(args["expression"])))
    except CalculatorError as exc:
        raise ToolError(str(exc)) from None


async def _current_time(session_id: str, args: dict[str, Any]) -> str:
    name = str(args.get("timezone") or "UTC")
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        hint = "use an IANA name such as Europe/Paris"
        raise ToolError(f"Unknown time zone {name!r}; {hint}.") from None
    return datetime.now(UTC).astimezone(zone).isoformat(timespec="seconds")


async def _notes(session_id: str, args: dict[str, Any]) -> str:
    action, key = args.get("action"), str(args.get("key") or "")
    if action not in ("set", "get", "list"):
        raise ToolError("action must be one of set, get, list.")
    notes = Note.objects.filter(session_id=session_id)
    if action == "list":
        return json.dumps([n.key async for n in notes.order_by("key")])
    if not key:
        raise ToolError(f"'{action}' needs a key.")
    if action == "get":
        note = await notes.filter(key=key).afirst()
        if note is None:
            raise ToolError(f"No note named {key!r}.")
        return note.value
    value = str(args.get("value") or "")
    if len(value) > MAX_NOTE_CHARS:
        raise ToolError(f"Notes are limited to {MAX_NOTE_CHARS} characters.")
    await Note.objects.aupdate_or_create(session_id=session_id, key=key, defaults={"value": value})
    return f"Saved note {key!r}."


async def _http_get(session_id: str, args: dict[str, Any]) -> str:
    url = str(args.get("url") or "")
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError as exc:  # "http://[::1", a full-width "@" in the host...
        raise ToolError(f"The url is not a valid URL ({exc}).") from None
    allowed = [host.lower() for host in settings.TOOL_HTTP_ALLOWED_HOSTS]
    if parts.scheme not in ("http", "https") or not hostname:
        raise ToolError("The url must be an absolute http(s) URL.")
    if hostname not in allowed:
        hosts = ", ".join(allowed) or "none (the operator allows no host)"
        raise ToolError(f"The host {hostname!r} is not allowed; allowed hosts: {hosts}.")
    limit = settings.TOOL_OUTPUT_LIMIT
    try:
        async with (
            httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False) as client,
            client.stream("GET", url) as response,
        ):
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    break
    except httpx.InvalidURL as exc:  # what urlsplit lets through, httpx may still refuse
        raise ToolError(f"The url is not a valid URL ({exc}).") from None
    except httpx.HTTPError as exc:
        raise ToolError(f"GET {url} failed: {type(exc).__name__}.") from None
    header = f"HTTP {response.status_code}\n\n"
    # The whole output, header included, stays within the limit: a long page arrives cut.
    text = body[: max(limit - len(header), 0)].decode(response.encoding or "utf-8", "replace")
    return header + text[: max(limit - len(header), 0)]


BUILTINS: dict[str, Builtin] = {
    tool.name: tool
    for tool in [
        Builtin(
            "calculator",
            "Evaluate an arithmetic expression exactly (+ - * / // % **, sqrt, log, pi...).",
            {
                "type": "object",
                "properties": {"expression": {"type": "string", "description": "e.g. 2*(3+4)"}},
                "required": ["expression"],
                "additionalProperties": False,
            },
            _calculator,
        ),
        Builtin(
            "current_time",
            "The current date and time in a time zone.",
            {
                "type": "object",
                "properties": {"timezone": {"type": "string", "description": "IANA name"}},
                "required": ["timezone"],
                "additionalProperties": False,
            },
            _current_time,
        ),
        Builtin(
            "notes",
            "Remember things across steps: set, get or list this session's notes.",
            {
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": ["set", "get", "list"]},
                    "key": {"type": "string"},
                    "value": {"type": "string"},
                },
                "required": ["action"],
                "additionalProperties": False,
            },
            _notes,
        ),
        Builtin(
            "http_get",
            "Fetch a URL with HTTP GET (only hosts the operator allows).",
            {
                "type": "object",
                "properties": {"url": {"type": "string", "description": "an https:// URL"}},
                "required": ["url"],
                "additionalProperties": False,
            },
            _http_get,
        ),
    ]
}
