"""The staff's upstream page (/admin/inspector/upstream/): which upstream new sessions talk to,
with which model, whether it answers right now, and how to point the playground elsewhere.

Whether it answers is the model picker's request (playground/model_picker.py): ``GET
/v1/models`` on the process's client for the upstream, within the same 2 s, asked each time the
page opens (never cached). The API key is never shown, not even in part: the page says only
whether one is set, and a failure's text has it replaced before it is shown.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import openai
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from agents.upstream.clients import shared_client
from playground.model_picker import LIST_TIMEOUT

MODELS_SHOWN = 20
ERROR_CHARS = 300


@dataclass
class Probe:
    """What ``GET /v1/models`` said: an answer in ``ms``, or the ``error`` that prevented one."""

    ms: float
    error: str = ""
    models: list[str] = field(default_factory=list)

    @property
    def answering(self) -> bool:
        return not self.error


def _hidden(text: str) -> str:
    """``text`` without the API key (an upstream's error may quote it), and bounded."""
    key = str(settings.OPENAI_API_KEY)
    if key:
        text = text.replace(key, "[the key]")
    return text[:ERROR_CHARS]


def failure(exc: BaseException) -> str:
    """What went wrong, in words, naming the error and never the key."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {LIST_TIMEOUT:g} s (timeout)"
    if isinstance(exc, openai.APIStatusError):
        refused = " (the key was refused)" if exc.status_code in (401, 403) else ""
        return f"HTTP {exc.status_code} from GET /v1/models{refused}"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        detail = str(cause) or type(cause).__name__
        return _hidden(f"cannot connect ({type(cause).__name__}: {detail})")
    return _hidden(f"{type(exc).__name__}: {exc}")


async def probe() -> Probe:
    """``GET /v1/models`` on the upstream, as the model picker asks it, timed."""
    client = shared_client(settings.UPSTREAM_BASE_URL, settings.OPENAI_API_KEY)
    started = time.monotonic()
    try:
        page = await asyncio.wait_for(client.models.list(), LIST_TIMEOUT)
    except Exception as exc:  # down, slow, refusing, or without the endpoint: say which
        return Probe((time.monotonic() - started) * 1000, failure(exc))
    names = sorted({model.id for model in page.data if isinstance(model.id, str)})
    return Probe((time.monotonic() - started) * 1000, models=names)


def _where() -> str:
    if settings.UPSTREAM_IS_EMBEDDED:
        return "the embedded simulator"
    host = urlsplit(settings.UPSTREAM_BASE_URL).hostname or ""
    return "OpenAI" if host == "api.openai.com" else "a gateway or server of your own"


def shown_url(url: str) -> str:
    """The upstream's URL without a user or password in it (a gateway may take them there)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=host).geturl()


@require_GET
async def upstream(request: HttpRequest) -> HttpResponse:
    """The page (async: the probe runs on the server's loop, where its client lives)."""
    return await sync_to_async(_page)(request, await probe())


def _page(request: HttpRequest, found: Probe) -> HttpResponse:
    context = {
        **admin.site.each_context(request),
        "title": "Upstream",
        "embedded": settings.UPSTREAM_IS_EMBEDDED,
        "where": _where(),
        "base_url": shown_url(settings.UPSTREAM_BASE_URL),
        # The embedded simulator's key is this process's own random one: not the operator's.
        "key_set": bool(settings.OPENAI_API_KEY) and not settings.UPSTREAM_IS_EMBEDDED,
        "model": settings.UPSTREAM_MODEL,
        "probe": found,
        "model_listed": settings.UPSTREAM_MODEL in found.models,
        "models_shown": found.models[:MODELS_SHOWN],
        "more_models": max(len(found.models) - MODELS_SHOWN, 0),
        "timeout": LIST_TIMEOUT,
    }
    return render(request, "admin/upstream.html", context)
