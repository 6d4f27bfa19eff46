"""System checks for configurations that work on a laptop and fail in production."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from playground import static_files

UPSTREAM_PROBE_TIMEOUT = 3.0


@register(Tags.compatibility)
def check_channel_layer(**kwargs: Any) -> list[CheckMessage]:
    backend = str(settings.CHANNEL_LAYERS["default"]["BACKEND"])
    if not settings.DEBUG and backend.endswith("InMemoryChannelLayer"):
        return [
            Warning(
                "The in-memory channel layer and context store only work within one process.",
                hint="Set REDIS_URL to run more than one daphne process.",
                id="playground.W001",
            )
        ]
    return []


@register(Tags.compatibility)
def check_static_files(**kwargs: Any) -> list[CheckMessage]:
    """Pages name static files by their hashed names, which only collectstatic's manifest knows:
    without it, with DEBUG off, every page is a 500. (Not tagged ``staticfiles``: collectstatic
    runs those checks, and must not be stopped by this one.)"""
    backend = str(settings.STORAGES["staticfiles"]["BACKEND"])
    if settings.DEBUG or "Manifest" not in backend or static_files.collected():
        return []
    return [
        Error(
            f"DEBUG is off and STATIC_ROOT ({settings.STATIC_ROOT}) holds no collected static "
            "files.",
            hint="Run `manage.py collectstatic --no-input` (make run does) after each upgrade.",
            id="playground.E004",
        )
    ]


@register("upstream", deploy=True)
def check_upstream_reachable(**kwargs: Any) -> list[CheckMessage]:
    """Only under --deploy: it opens a TCP connection. The embedded simulator is this process."""
    if settings.UPSTREAM_IS_EMBEDDED:
        return []
    url = urlsplit(settings.UPSTREAM_BASE_URL)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), UPSTREAM_PROBE_TIMEOUT):
            return []
    except OSError as exc:
        return [
            Warning(
                f"The upstream {url.scheme}://{url.hostname}:{port} is not reachable "
                f"({exc.strerror or type(exc).__name__}).",
                hint="Check UPSTREAM_BASE_URL, or unset it (and OPENAI_API_KEY) to use the "
                "embedded simulator.",
                id="playground.W003",
            )
        ]
