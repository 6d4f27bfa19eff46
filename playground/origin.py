"""Refuse WebSocket connections from other sites, for good.

A socket is served only when its ``Origin`` is the request's own origin: the same scheme, host and
port as the page the browser loaded from this server (``Host`` and the scheme the request came in
on), and the host is one of ``ALLOWED_HOSTS``. Channels' ``OriginValidator`` compares host names
only, so ``http://127.0.0.1:9999`` (any other server on the machine) passed for
``http://127.0.0.1:8000``, with the visitor's cookies.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, urlsplit

from django.conf import settings
from django.http.request import validate_host

from playground.protocol import CLOSE_FORBIDDEN

DEBUG_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
DEFAULT_PORTS = {"http": 80, "https": 443}


class SameOriginOnly:
    """Serve same-origin sockets; refuse the others with accept + close 4403.

    Closing before accept is an HTTP 403 that browsers see as 1006 and htmx retries forever.
    """

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        if same_origin(scope):
            return await self.application(scope, receive, send)
        message = await receive()
        if message["type"] != "websocket.connect":
            return None
        await send({"type": "websocket.accept"})
        reason = "Cross-origin WebSocket refused."
        await send({"type": "websocket.close", "code": CLOSE_FORBIDDEN, "reason": reason})
        return None


def same_origin(scope: Any) -> bool:
    origin, host = _header(scope, b"origin"), _header(scope, b"host")
    if origin is None or host is None:
        return False  # browsers send both; without them the origin cannot be proved
    theirs, ours = _origin(origin), _origin(f"{_scheme(scope)}://{host}")
    return theirs is not None and theirs == ours and _allowed(theirs[1])


def _scheme(scope: Any) -> str:
    """http or https: how the page that opens this socket was loaded.

    daphne leaves ``scheme`` out of a WebSocket scope even with ``--proxy-headers``, so behind a
    TLS proxy the proxy's ``X-Forwarded-Proto`` says it. Trusting it cannot let another site
    in: a page cannot set headers on the sockets it opens.
    """
    scheme = scope.get("scheme") or _header(scope, b"x-forwarded-proto") or "ws"
    return "https" if scheme.split(",")[0].strip().lower() in ("https", "wss") else "http"


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) origin, else None (``null``, other schemes, junk)."""
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def _allowed(hostname: str) -> bool:
    hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not hosts:
        hosts = DEBUG_HOSTS
    return validate_host(f"[{hostname}]" if ":" in hostname else hostname, hosts)


def _header(scope: Any, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin1", "replace")
    return None
