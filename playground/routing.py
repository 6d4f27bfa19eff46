from __future__ import annotations

from typing import Any

from django.urls import path

from playground.consumers import SessionConsumer
from playground.inspector.consumers import InspectorListConsumer, InspectorSessionConsumer
from playground.viewer import ViewerConsumer

websocket_urlpatterns: list[Any] = [
    path("ws/sessions/<uuid:session_id>/", SessionConsumer.as_asgi()),  # type: ignore[arg-type]
    path("ws/share/<str:token>/", ViewerConsumer.as_asgi()),  # type: ignore[arg-type]
    path("ws/inspector/", InspectorListConsumer.as_asgi()),  # type: ignore[arg-type]
    path(
        "ws/inspector/<uuid:session_id>/",
        InspectorSessionConsumer.as_asgi(),  # type: ignore[arg-type]
    ),
]
