"""System checks for configurations that work on a laptop and fail in production."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

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


@register(Tags.security, deploy=True)
def check_secret_key(**kwargs: Any) -> list[CheckMessage]:
    if settings.SECRET_KEY == settings.DEFAULT_SECRET_KEY and not settings.DEBUG:
        return [
            Error(
                "SECRET_KEY is the development default while DEBUG is off.",
                hint="Set SECRET_KEY to a long random value (python -c 'import secrets; "
                "print(secrets.token_urlsafe(50))').",
                id="playground.E002",
            )
        ]
    return []


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
