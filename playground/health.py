"""Health endpoints for a load balancer or an orchestrator (docs/operations.md).

- ``/healthz`` (liveness): the process answers. No database trip, no Redis: a process whose
  database is away must not be restarted for it.
- ``/readyz`` (readiness): it can serve. One ``SELECT 1`` on the database thread, a PING to Redis
  (with ``REDIS_URL``), and a TCP connect to the upstream's host and port (the embedded
  simulator is this process: ok). 200 with each check's result, or 503 saying what failed.

Cheap enough to poll every second from many balancers: the checks run concurrently, each
within ``CHECK_TIMEOUT``; a result is reused for ``CACHE_SECONDS``, and polls that arrive while
the checks run wait for them rather than starting their own. The body never holds a secret: a
failure is a short reason picked from a fixed list (or the error's class), never the error's
text, which could quote a URL with its password.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable
from contextlib import suppress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import redis.asyncio as redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError
from redis.exceptions import TimeoutError as RedisTimeout

from agents import dbthread
from agents.loops import per_loop

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 1.0  # seconds each check may take
CACHE_SECONDS = 1.0  # how long a result answers every poll
NO_STORE = {"Cache-Control": "no-store"}

Outcome = tuple[bool, str]  # passed, and "ok" (or what it is) or why it failed
Config = tuple[str, str, bool]  # what the checks reach: REDIS_URL, the upstream, embedded


@require_safe
async def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain; charset=utf-8", headers=NO_STORE)


@require_safe
async def readyz(request: HttpRequest) -> HttpResponse:
    report = await readiness()
    body: dict[str, object] = {
        "status": "ready" if report.ready else "unavailable",
        "checks": report.checks,
    }
    if not report.ready:
        body["failed"] = report.failed
    response = JsonResponse(body, status=200 if report.ready else 503, headers=NO_STORE)
    # Django logs every 5xx at ERROR ("Service Unavailable"): once a second while a dependency
    # is away. This module logs when readiness changes instead (_refresh).
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


@dataclass(frozen=True)
class Report:
    checks: dict[str, str]  # name -> "ok", "embedded", "not configured", or why it failed
    failed: list[str]  # "redis: connection refused", ...

    @property
    def ready(self) -> bool:
        return not self.failed


@dataclass
class Cache:
    """This event loop's last report, and the checks under way."""

    config: Config | None = None
    report: Report | None = None
    at: float = float("-inf")  # when the report was made (monotonic)
    pending: asyncio.Task[Report] | None = None
    runs: int = 0  # how many times the checks ran (tests read it)
    last_failed: list[str] = field(default_factory=list)


cache = per_loop(Cache)


async def readiness() -> Report:
    state = cache()
    config = (settings.REDIS_URL, settings.UPSTREAM_BASE_URL, settings.UPSTREAM_IS_EMBEDDED)
    fresh = time.monotonic() - state.at < CACHE_SECONDS
    if state.report is not None and state.config == config and fresh:
        return state.report
    if state.pending is None or state.config != config:
        state.config = config
        state.pending = asyncio.create_task(_refresh(state, config))
    # Shielded: a balancer hanging up must not cancel the checks the other polls wait for.
    return await asyncio.shield(state.pending)


async def _refresh(state: Cache, config: Config) -> Report:
    state.runs += 1
    report = await check_all(*config)
    if state.config == config:
        state.report, state.at, state.pending = report, time.monotonic(), None
    # A line when readiness changes, not at every poll: a balancer polls every second.
    if report.failed != state.last_failed:
        if report.failed:
            log.warning("Not ready: %s", "; ".join(report.failed))
        else:
            log.info("Ready again: database, Redis and upstream answer")
        state.last_failed = report.failed
    return report


async def check_all(redis_url: str, upstream_url: str, embedded: bool) -> Report:
    names = ("database", "redis", "upstream")
    outcomes = await asyncio.gather(
        bounded(check_database()),
        bounded(check_redis(redis_url)),
        bounded(check_upstream(upstream_url, embedded)),
    )
    checks = {name: detail for name, (_, detail) in zip(names, outcomes, strict=True)}
    failed = [
        f"{name}: {detail}" for name, (ok, detail) in zip(names, outcomes, strict=True) if not ok
    ]
    return Report(checks, failed)


async def bounded(check: Awaitable[str]) -> Outcome:
    """A check's outcome within CHECK_TIMEOUT; a failure as a short reason."""
    try:
        return True, await asyncio.wait_for(check, CHECK_TIMEOUT)
    except TimeoutError:
        return False, "timed out"
    except Exception as exc:
        return False, reason(exc)


# -- the checks ----------------------------------------------------------------------------------


def _select_one() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def check_database() -> str:
    # On the database thread, as every query of the process: it checks the thread's connection
    # too (agents/dbthread.py), so a database that came back is seen at once.
    await dbthread.call(_select_one)
    return "ok"


async def check_redis(url: str) -> str:
    if not url:
        return "not configured"
    # A connection of its own, short timeouts and no retry: the process's clients wait and
    # retry through a Redis restart (settings.REDIS_OPTIONS), which would hide that it is down.
    client = redis.Redis.from_url(
        url,
        socket_connect_timeout=CHECK_TIMEOUT,
        socket_timeout=CHECK_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        await client.ping()
    finally:
        await client.aclose()
    return "ok"


async def check_upstream(url: str, embedded: bool) -> str:
    if embedded:
        return "embedded"  # this process: it answers if this view does
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
    _, writer = await asyncio.open_connection(parts.hostname, port)
    writer.close()
    with suppress(OSError):
        await writer.wait_closed()
    return "ok"


# -- failures in words ---------------------------------------------------------------------------

# Phrases looked for in an error's text (never shown): a driver's error quotes its host, user,
# sometimes its URL; only these words are.
PHRASES = (
    ("connection refused", "connection refused"),
    ("timeout", "timed out"),
    ("timed out", "timed out"),
    ("authentication", "authentication failed"),
    ("password", "authentication failed"),
    ("could not translate host name", "host not found"),
    ("name or service not known", "host not found"),
    ("no such file", "no such file"),
)


def reason(exc: BaseException) -> str:
    """A short reason for a failed check, from the error and the errors it came from."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for error in chain:
        if isinstance(error, ConnectionRefusedError):
            return "connection refused"
        if isinstance(error, TimeoutError | RedisTimeout):
            return "timed out"
        if isinstance(error, socket.gaierror):
            return "host not found"
        if isinstance(error, AuthenticationError):
            return "authentication failed"
        if isinstance(error, ConnectionResetError):
            return "connection reset"
    for error in chain:
        text = str(error).lower()
        for phrase, said in PHRASES:
            if phrase in text:
                return said
    return type(exc).__name__
