"""The balancer's probes: /healthz (the process answers) and /readyz (database, Redis, upstream),
against real services stopped and started again (docs/operations.md)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.test import AsyncClient

from agents import dbthread
from playground import health
from tests.liveserver import LiveServer
from tests.services import PrivateRedis, require_redis
from tests.simserver import SimServer

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "hunter2-not-for-logs"


async def ready(client: AsyncClient, fresh: bool = True) -> tuple[int, dict[str, Any]]:
    """GET /readyz; with ``fresh``, past the cached result (as a poll a second later is)."""
    if fresh:
        health.cache().at = float("-inf")
    response = await client.get("/readyz")
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    return response.status_code, json.loads(response.content)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis().start()
    yield server
    server.stop()


@pytest.fixture
def upstream_at(settings: Any) -> Callable[[str], None]:
    def point(base_url: str) -> None:
        settings.UPSTREAM_BASE_URL = base_url
        settings.UPSTREAM_IS_EMBEDDED = False

    return point


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never says a word."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


# -- /healthz ------------------------------------------------------------------------------------


async def test_healthz_answers_ok_without_a_database_trip_or_a_cookie() -> None:
    trips = dbthread.trips().trips
    client = AsyncClient(enforce_csrf_checks=True)  # as strict as a browser's request is held
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok"
    assert response["Cache-Control"] == "no-store"
    assert not response.cookies  # nothing to keep: a balancer sends no cookie back
    assert (await client.head("/healthz")).status_code == 200
    assert dbthread.trips().trips == trips


# -- /readyz -------------------------------------------------------------------------------------


async def test_readyz_with_everything_up(
    settings: Any, sim_server: SimServer, upstream_at: Callable[[str], None]
) -> None:
    require_redis()
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    upstream_at(sim_server.base_url)
    client = AsyncClient()
    status, body = await ready(client)
    assert (status, body) == (
        200,
        {"status": "ready", "checks": {"database": "ok", "redis": "ok", "upstream": "ok"}},
    )
    assert (await client.head("/readyz")).status_code == 200
    assert not (await client.get("/readyz")).cookies


async def test_the_embedded_upstream_and_no_redis_are_ready(settings: Any) -> None:
    settings.REDIS_URL = ""
    settings.UPSTREAM_IS_EMBEDDED = True
    status, body = await ready(AsyncClient())
    assert status == 200
    assert body["checks"] == {"database": "ok", "redis": "not configured", "upstream": "embedded"}


async def test_readyz_says_redis_is_down_then_ready_once_it_is_back(
    settings: Any, private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    settings.UPSTREAM_IS_EMBEDDED = True
    # A password in the URL: it must appear in no answer and no log line.
    settings.REDIS_URL = f"redis://:{SECRET}@127.0.0.1:{private_redis.port}/0"
    client = AsyncClient()
    caplog.set_level(logging.INFO, logger="playground.health")
    private_redis.stop()
    for _ in range(3):  # three polls, one log line: the log says when readiness changes
        response = await client.get("/readyz")
        health.cache().at = float("-inf")
        assert response.status_code == 503
        body = json.loads(response.content)
        assert body["status"] == "unavailable"
        assert body["failed"] == ["redis: connection refused"]
        assert body["checks"] == {
            "database": "ok",
            "redis": "connection refused",
            "upstream": "embedded",
        }
        assert SECRET.encode() not in response.content
        assert str(private_redis.port).encode() not in response.content
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["Not ready: redis: connection refused"]

    private_redis.start()  # the same port again
    status, body = await ready(client)
    assert (status, body["checks"]["redis"]) == (200, "ok")
    assert "failed" not in body
    assert "Ready again" in caplog.records[-1].getMessage()
    assert SECRET not in caplog.text
    # Django's own "Service Unavailable" line at every poll would flood the log: not there.
    assert not [r for r in caplog.records if r.name == "django.request"]


async def test_readyz_says_the_upstream_is_down_then_ready_once_it_is_back(
    settings: Any, start_sim: Callable[..., SimServer], upstream_at: Callable[[str], None]
) -> None:
    settings.REDIS_URL = ""
    server = start_sim()
    upstream_at(server.base_url)
    client = AsyncClient()
    assert (await ready(client))[0] == 200
    server.stop()
    status, body = await ready(client)
    assert status == 503
    assert body["failed"] == ["upstream: connection refused"]
    assert body["checks"]["database"] == "ok"
    server.start()  # the same port again
    status, body = await ready(client)
    assert (status, body["checks"]["upstream"]) == (200, "ok")


async def test_an_upstream_host_that_does_not_resolve_is_named(
    settings: Any, upstream_at: Callable[[str], None]
) -> None:
    settings.REDIS_URL = ""
    upstream_at("http://upstream.invalid:9/v1")
    status, body = await ready(AsyncClient())
    assert status == 503
    assert body["failed"] in (["upstream: host not found"], ["upstream: timed out"])


async def test_a_redis_that_never_answers_fails_within_a_second(
    settings: Any, silent_port: int
) -> None:
    settings.UPSTREAM_IS_EMBEDDED = True
    settings.REDIS_URL = f"redis://127.0.0.1:{silent_port}/0"
    started = time.monotonic()
    status, body = await ready(AsyncClient())
    elapsed = time.monotonic() - started
    assert (status, body["failed"]) == (503, ["redis: timed out"])
    assert elapsed < health.CHECK_TIMEOUT + 0.5


async def test_the_event_loop_keeps_running_while_the_checks_wait(
    settings: Any, silent_port: int
) -> None:
    """The checks are awaited, never run on the loop: a ticker keeps its pace meanwhile."""
    settings.UPSTREAM_IS_EMBEDDED = True
    settings.REDIS_URL = f"redis://127.0.0.1:{silent_port}/0"
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await ready(AsyncClient())  # about a second, waiting for Redis
    ticker.cancel()
    assert ticks > 40


async def test_a_flood_of_polls_makes_one_round_of_checks(
    settings: Any, private_redis: PrivateRedis
) -> None:
    settings.UPSTREAM_IS_EMBEDDED = True
    settings.REDIS_URL = private_redis.url
    counter = redis.Redis.from_url(private_redis.url)
    try:
        before = int(counter.info("stats")["total_connections_received"])
        runs = health.cache().runs
        client = AsyncClient()
        answers = await asyncio.gather(*(client.get("/readyz") for _ in range(100)))
        assert {a.status_code for a in answers} == {200}
        assert health.cache().runs == runs + 1
        after = int(counter.info("stats")["total_connections_received"])
        assert after - before == 1  # one PING's connection for a hundred polls
        # Within CACHE_SECONDS the result is reused; after it, the checks run again.
        await client.get("/readyz")
        assert health.cache().runs == runs + 1
        await asyncio.sleep(health.CACHE_SECONDS + 0.1)
        await client.get("/readyz")
        assert health.cache().runs == runs + 2
    finally:
        counter.close()


def test_a_failure_is_a_short_reason_never_the_errors_text() -> None:
    class OperationalError(Exception):
        pass

    leaky = OperationalError(
        f'connection to server at "db" failed: FATAL: password authentication failed ({SECRET})'
    )
    assert health.reason(leaky) == "authentication failed"
    assert health.reason(OperationalError(f"postgres://u:{SECRET}@db/x")) == "OperationalError"
    # As redis-py raises it: its own error, from the socket's.
    wrapped = redis.ConnectionError(f"Error 111 connecting to {SECRET}")
    wrapped.__cause__ = ConnectionRefusedError(111, "Connection refused")
    assert health.reason(wrapped) == "connection refused"
    assert health.reason(redis.TimeoutError("Timeout reading")) == "timed out"
    assert health.reason(socket.gaierror(-2, "Name or service not known")) == "host not found"


# -- end to end ----------------------------------------------------------------------------------


def get(url: str, host: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_a_live_server_answers_both_probes(migrated_database: Path) -> None:
    """daphne as ``make run`` starts it: both probes over HTTP, no cookie sent; a Host outside
    ALLOWED_HOSTS is refused like any request (the balancer must send an allowed one)."""
    server = LiveServer(template=migrated_database).start()
    try:
        assert get(server.base_url + "/healthz") == (200, b"ok")
        status, body = get(server.base_url + "/readyz")
        assert status == 200, body
        checks = json.loads(body)["checks"]
        assert checks == {"database": "ok", "redis": "not configured", "upstream": "embedded"}
        assert get(server.base_url + "/healthz", host="10.0.0.7")[0] == 400
    finally:
        server.stop()
