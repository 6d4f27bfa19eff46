"""Refuse WebSocket connections from other sites, for good."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from channels.security.websocket import OriginValidator
from django.conf import settings

CLOSE_CROSS_ORIGIN = 4403


class SameOriginOnly(OriginValidator):
    """Channels' allowed-hosts origin check, refusing with accept + close 4403.

    Channels denies before accepting, which browsers see as 1006 and htmx retries forever.
    """

    def __init__(self, application: Any) -> None:
        hosts = settings.ALLOWED_HOSTS
        if settings.DEBUG and not hosts:
            hosts = ["localhost", "127.0.0.1", "[::1]"]
        super().__init__(application, hosts)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        origin = None
        for name, value in scope.get("headers", []):
            if name == b"origin":
                origin = value.decode("latin1", "replace")
        if self.valid_origin(_parse(origin)):
            return await self.application(scope, receive, send)  # type: ignore[call-arg,misc]
        message = await receive()
        if message["type"] != "websocket.connect":
            return None
        await send({"type": "websocket.accept"})
        reason = "Cross-origin WebSocket refused."
        await send({"type": "websocket.close", "code": CLOSE_CROSS_ORIGIN, "reason": reason})
        return None


def _parse(origin: str | None) -> Any:
    return None if origin is None else urlparse(origin)
