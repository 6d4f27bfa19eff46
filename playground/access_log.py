"""One log line per HTTP request: method, path, status, duration and client address.

The outermost middleware (settings.MIDDLEWARE), so the duration covers every other one and the
status is the one the client got. Async only: under daphne it never costs a thread hop. The path
is logged without its query string (a token could be there), and what the log's filters see
(playground/logging.py) redacts a share token in it. A balancer's health polls, every second or
so, are logged at DEBUG only.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from asgiref.sync import markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from playground.logging import session_context

log = logging.getLogger("playground.access")

HEALTH_PATHS = frozenset({"/healthz", "/readyz"})
# A request about a session: its pages and forms, and the inspector's views of it.
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
SESSION_PATH_RE = re.compile(rf"^/(?:sessions|admin/inspector)/({UUID})/")
# What a path keeps unquoted in the log; anything else (spaces, newlines, quotes) is escaped,
# so a path from outside cannot forge a line.
PATH_SAFE = "/:@!$&'()*+,;=-._~%"

GetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


def loggable_path(path: str) -> str:
    return quote(path, safe=PATH_SAFE)


def session_of(path: str) -> str:
    """The session a request's path is about, or ""."""
    match = SESSION_PATH_RE.search(path)
    return match[1] if match else ""


def access_log(get_response: GetResponse) -> Callable[[HttpRequest], Awaitable[HttpResponseBase]]:
    async def middleware(request: HttpRequest) -> HttpResponseBase:
        started = time.monotonic()
        path = request.path
        session = session_of(path)
        token = session_context.set(session) if session else None
        status = 500  # if the response never comes
        try:
            response = await get_response(request)
            status = response.status_code
            return response
        finally:
            level = logging.DEBUG if path in HEALTH_PATHS else logging.INFO
            if log.isEnabledFor(level):
                shown = loggable_path(path)
                duration = round((time.monotonic() - started) * 1000, 1)
                client = request.META.get("REMOTE_ADDR") or "-"
                log.log(
                    level,
                    "%s %s %s %.1fms %s",
                    request.method,
                    shown,
                    status,
                    duration,
                    client,
                    extra={
                        "method": request.method,
                        "path": shown,
                        "status": status,
                        "duration_ms": duration,
                        "client": client,
                    },
                )
            if token is not None:
                session_context.reset(token)

    markcoroutinefunction(middleware)
    return middleware


# Django's flags: async only, so the handler never wraps this in a thread.
access_log.sync_capable = False  # type: ignore[attr-defined]
access_log.async_capable = True  # type: ignore[attr-defined]
