"""The browser sockets' paths; any other path is refused for good (accept, close 4404)."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.urls import path, re_path

from playground.consumers import CompareConsumer, SessionConsumer
from playground.inspector.consumers import InspectorListConsumer, InspectorSessionConsumer
from playground.protocol import CLOSE_NOT_FOUND
from playground.viewer import ViewerConsumer


class UnroutableConsumer(AsyncWebsocketConsumer):
    """A socket path no consumer serves (``../``, ``%2F``, a quote, a 10,000-character id).

    Without it URLRouter raises, which daphne answers with 500 and a traceback, and the
    browser, seeing 1006, retries for ever.
    """

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_NOT_FOUND, reason="No socket at this address.")


websocket_urlpatterns: list[Any] = [
    path("ws/sessions/<uuid:session_id>/", SessionConsumer.as_asgi()),  # type: ignore[arg-type]
    path(
        "ws/sessions/<uuid:session_id>/compare/<int:compare_id>/",
        CompareConsumer.as_asgi(),  # type: ignore[arg-type]
    ),
    # No token in the path (access logs write paths): the page sends it in the first frame.
    path("ws/share/", ViewerConsumer.as_asgi()),  # type: ignore[arg-type]
    path("ws/inspector/", InspectorListConsumer.as_asgi()),  # type: ignore[arg-type]
    path(
        "ws/inspector/<uuid:session_id>/",
        InspectorSessionConsumer.as_asgi(),  # type: ignore[arg-type]
    ),
    # Last: any other path.
    re_path(r"", UnroutableConsumer.as_asgi()),  # type: ignore[arg-type]
]
