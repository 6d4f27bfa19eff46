"""Static files served by the process itself, so that ``make run`` needs nothing in front.

WhiteNoise does the work (its index of STATIC_ROOT, hashed names cached for a year as
immutable, gzip copies for clients that accept them, ETags, ranges); its Django middleware,
though, is synchronous, and in the middleware chain it would send every request of the
process through a thread and back. Here it sits in front of Django as an ASGI app instead:
a request under STATIC_URL is a dictionary lookup and a file read on a worker thread, and
everything else goes straight on to Django. nginx, when there is one, serves the same folder.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from whitenoise.middleware import WhiteNoiseMiddleware
from whitenoise.responders import StaticFile

from simulator.asgi import Receive, Scope, Send

MANIFEST = "staticfiles.json"  # what ManifestStaticFilesStorage writes into STATIC_ROOT


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def collected() -> bool:
    """Whether ``collectstatic`` has filled STATIC_ROOT (hashed names need its manifest)."""
    return (Path(settings.STATIC_ROOT) / MANIFEST).is_file()


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers the way WhiteNoise reads them (WSGI's ``HTTP_IF_NONE_MATCH``)."""
    return {
        "HTTP_" + name.decode("latin-1").upper().replace("-", "_"): value.decode("latin-1")
        for name, value in scope["headers"]
    }


def answer(static_file: StaticFile, method: str, headers: dict[str, str]) -> Answer:
    """On a worker thread: WhiteNoise's response, the file read whole (static files are small)."""
    response = static_file.get_response(method, headers)
    body = b""
    if response.file is not None:
        with response.file:
            body = response.file.read()
    return Answer(
        int(response.status),
        [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers],
        body,
    )


class StaticFiles:
    """ASGI: requests under STATIC_URL that name a static file are answered here; all others,
    and unknown names (a 404 from Django), go to ``app``."""

    def __init__(self, app: Any) -> None:  # Django's handler: its own Scope type
        self.app = app
        # Reads STATIC_ROOT's index once (with DEBUG on: finds files on each request instead).
        self.whitenoise = WhiteNoiseMiddleware(get_response=None)
        self.prefix: str = self.whitenoise.static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        found = await self.find(path)
        if found is None:
            await self.app(scope, receive, send)
            return
        result = await asyncio.to_thread(answer, found, scope["method"], request_headers(scope))
        await send(
            {"type": "http.response.start", "status": result.status, "headers": result.headers}
        )
        await send({"type": "http.response.body", "body": result.body})

    async def find(self, path: str) -> StaticFile | None:
        if self.whitenoise.autorefresh:  # DEBUG: looks on disk
            found: StaticFile | None = await asyncio.to_thread(self.whitenoise.find_file, path)
            return found
        known: StaticFile | None = self.whitenoise.files.get(path)
        return known
