"""The model picker's suggestions: the upstream's ``GET /v1/models``, asked at most once every
:data:`CACHE_SECONDS` with a short timeout. When it does not answer, there are none and the
field stays what it always is, free text."""

from __future__ import annotations

import asyncio
import logging
import time

from django.conf import settings

from agents.upstream.clients import shared_client

log = logging.getLogger(__name__)

LIST_TIMEOUT = 2.0  # seconds: a page never waits longer on the upstream's list
CACHE_SECONDS = 300.0
MAX_MODELS = 200

_cache: tuple[float, list[str]] | None = None  # when asked, and what came back


async def model_names() -> list[str]:
    global _cache
    now = time.monotonic()
    if _cache is not None and now - _cache[0] < CACHE_SECONDS:
        return _cache[1]
    client = shared_client(settings.UPSTREAM_BASE_URL, settings.OPENAI_API_KEY)
    try:
        page = await asyncio.wait_for(client.models.list(), LIST_TIMEOUT)
        names = sorted({model.id for model in page.data if isinstance(model.id, str)})
    except Exception as exc:  # an upstream without the endpoint, down, slow or refusing
        log.info("The upstream's model list is not available: %s", type(exc).__name__)
        names = []
    _cache = (now, names[:MAX_MODELS])
    return _cache[1]


def forget() -> None:
    """Ask again next time (tests; a changed upstream)."""
    global _cache
    _cache = None
