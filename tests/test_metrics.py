"""Prometheus metrics (agents/metrics.py): /metrics answers staff and the allowed addresses only,
every metric moves when its event happens, and the Grafana dashboard draws every one."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import AsyncClient, Client
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from agents import metrics
from agents.live.feed import Feed, Head
from agents.live.lease import RedisLeases
from agents.live.registry import RUNNERS
from agents.live.store import KEY_PREFIX, redis_client
from agents.models import Session, Step
from agents.run.events import ItemStarted, TextDelta
from playground.outbox import LIMIT, Outbox
from tests.services import REDIS_URL, require_redis
from tests.tabs import Tab, new_browser, new_session
from tests.unit import conftest as unit
from tests.unit.helpers import Served, StartSimulator, eventually

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana-dashboard.json"

# The in-process simulator on a port of the test's loop, and the settings that point runners
# at it (tests/unit/conftest.py).
served = unit.served
upstream_settings = unit.upstream_settings

UseServed = Callable[[Served], Served]


def value(name: str, **labels: str) -> float:
    """A sample's value now (0 for one not exported yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Before:
    """Samples taken now, to compare with later: ``moved(name)`` is the change since."""

    def __init__(self, *samples: tuple[str, dict[str, str]]) -> None:
        self.values = {
            (name, tuple(sorted(labels.items()))): value(name, **labels) for name, labels in samples
        }

    def moved(self, name: str, **labels: str) -> float:
        return value(name, **labels) - self.values[(name, tuple(sorted(labels.items())))]

    def by_kind(self, name: str, kinds: tuple[str, ...]) -> dict[str, float]:
        return {kind: self.moved(name, kind=kind) for kind in kinds}


def sample(name: str, **labels: str) -> tuple[str, dict[str, str]]:
    return name, labels


# -- the endpoint --------------------------------------------------------------------------------


async def logged_in(staff: bool) -> AsyncClient:
    user = await User.objects.acreate_user(f"{'staff' if staff else 'someone'}-metrics")
    user.is_staff = staff
    await user.asave()
    client = AsyncClient()
    await client.aforce_login(user)
    return client


@pytest.mark.django_db
async def test_anonymous_visitors_and_users_without_staff_rights_get_404(settings: Any) -> None:
    settings.METRICS_ALLOWED_ADDRESSES = []
    for client in (AsyncClient(), await logged_in(staff=False)):
        response = await client.get("/metrics")
        assert response.status_code == 404
        assert b"playground_" not in response.content


@pytest.mark.django_db
async def test_staff_get_every_metric_in_the_text_format(settings: Any) -> None:
    settings.METRICS_ALLOWED_ADDRESSES = []
    response = await (await logged_in(staff=True)).get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.content.decode()
    for name in defined_names():
        assert re.search(rf"^# TYPE {name}(_total)? ", text, re.MULTILINE), name
    assert "_created" not in text  # a timestamp series per counter, of no use here
    assert 'playground_upstream_steps_total{mode="delta"}' in text  # at 0 before any step


def from_address(address: str, **headers: str) -> Client:
    """An anonymous client whose requests come from ``address``."""
    return Client(headers=headers, REMOTE_ADDR=address)


@pytest.mark.django_db
def test_an_allowed_address_scrapes_without_a_login_but_not_through_a_proxy(
    settings: Any,
) -> None:
    settings.METRICS_ALLOWED_ADDRESSES = ["127.0.0.1", "10.0.0.9"]
    for address in ("127.0.0.1", "10.0.0.9"):
        response = from_address(address).get("/metrics")
        assert response.status_code == 200
        assert b"playground_browser_sockets " in response.content
    # Another address; and an allowed one that a proxy forwarded (nginx is on 127.0.0.1).
    assert from_address("10.0.0.10").get("/metrics").status_code == 404
    forwarded = from_address("127.0.0.1", **{"X-Forwarded-For": "203.0.113.7"})
    assert forwarded.get("/metrics").status_code == 404


# What the settings make of HTTPS=1 (a child process: the settings are read once per process).
REDIRECT_EXEMPT = """
import json, os
import django
os.environ["DJANGO_SETTINGS_MODULE"] = "playground.settings"
django.setup()
from django.conf import settings
print(json.dumps(settings.SECURE_REDIRECT_EXEMPT))
"""


@pytest.mark.django_db
def test_behind_https_a_scraper_over_plain_http_is_not_redirected(settings: Any) -> None:
    environment = {**os.environ, "HTTPS": "1", "SECRET_KEY": "x" * 50}
    child = subprocess.run(
        [sys.executable, "-c", REDIRECT_EXEMPT],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = json.loads(child.stdout.splitlines()[-1])
    settings.METRICS_ALLOWED_ADDRESSES = ["127.0.0.1"]
    assert from_address("127.0.0.1").get("/metrics").status_code == 200
    assert from_address("127.0.0.1").get("/").status_code == 301  # everything else is


# -- a session's socket against the in-process simulator -----------------------------------------


@pytest.fixture
async def session_tab(
    served: StartSimulator, upstream_settings: UseServed, runners: dict[str, Any]
) -> AsyncIterator[Callable[..., Any]]:
    """``await open_tab(**simulator_config)``: a session on a fresh in-process simulator and
    its open tab, the simulator's fault board ready to arm; the runners close at the end."""
    tabs: list[Tab] = []

    async def open_tab(**config: Any) -> tuple[Tab, Session, Served]:
        found = upstream_settings(await served(**config))
        browser = await new_browser()
        # Instructions: what a warm-up leaves cached for the first step (its parent's context
        # is empty).
        session = await new_session(browser, instructions="Answer as a harbour master would.")
        tab = Tab(str(session.pk), browser)
        tabs.append(tab)
        return tab, session, found

    yield open_tab
    for tab in tabs:
        if tab.open_now:
            await tab.close()


async def warmed(tab: Tab, session: Session) -> None:
    """Open the tab and wait for its prewarm (the warm step saved)."""
    await tab.open()
    await tab.until(r'data-busy="false"')
    await eventually(lambda: RUNNERS.get(str(session.pk)) is not None)
    runner = RUNNERS[str(session.pk)]
    await eventually(lambda: runner.websocket.connected and runner.prewarm.task is None, 10)


async def steps_of(session: Session) -> list[Step]:
    return [s async for s in Step.objects.filter(session=session).order_by("id")]


@pytest.mark.django_db(transaction=True)
async def test_a_tab_moves_the_socket_warm_session_and_lease_gauges_up_then_down(
    session_tab: Callable[..., Any],
) -> None:
    tab, session, _ = await session_tab()
    before = Before(
        sample("playground_browser_sockets"),
        sample("playground_warm_upstream_sessions"),
        sample("playground_leases_held"),
    )
    await warmed(tab, session)
    assert before.moved("playground_browser_sockets") == 1
    assert before.moved("playground_warm_upstream_sessions") == 1
    assert before.moved("playground_leases_held") == 1

    await tab.close()
    await eventually(lambda: before.moved("playground_browser_sockets") == 0)
    # The runner outlives its last tab (the idle grace); closed, it lets its socket and lease go.
    assert before.moved("playground_warm_upstream_sessions") == 1
    await RUNNERS[str(session.pk)].close()
    assert before.moved("playground_warm_upstream_sessions") == 0
    assert before.moved("playground_leases_held") == 0


@pytest.mark.django_db(transaction=True)
async def test_a_run_counts_its_steps_bytes_and_tokens_and_is_in_flight_while_it_runs(
    session_tab: Callable[..., Any],
) -> None:
    # 200 tokens/s: a 300-token reply streams for about 1.5 s, long enough to see it in flight.
    tab, session, _ = await session_tab(tokens_per_s=200)
    steps = [sample("playground_upstream_steps_total", mode=mode) for mode in metrics.STEP_MODES]
    before = Before(
        *steps,
        sample("playground_runs_in_flight"),
        sample("playground_upstream_bytes_sent_total"),
        sample("playground_upstream_input_tokens_total"),
        sample("playground_upstream_cached_tokens_total"),
    )
    await warmed(tab, session)
    await tab.send("/chat 300 tides at Brest")
    await eventually(lambda: before.moved("playground_runs_in_flight") == 1, 10)
    await tab.until(r'data-busy="false"', wait=30)
    assert before.moved("playground_runs_in_flight") == 0
    # A fresh socket: the next step is a full create.
    assert RUNNERS[str(session.pk)].command("drop") is None
    await tab.turn("/chat 5 and again")

    recorded = await steps_of(session)
    assert [s.mode for s in recorded] == ["warm", "delta", "create"]
    for mode in metrics.STEP_MODES:
        assert before.moved("playground_upstream_steps_total", mode=mode) == 1
    assert before.moved("playground_upstream_bytes_sent_total") == sum(
        s.bytes_sent for s in recorded
    )
    assert before.moved("playground_upstream_input_tokens_total") == sum(
        s.input_tokens for s in recorded
    )
    cached = before.moved("playground_upstream_cached_tokens_total")
    assert cached == sum(s.cached_tokens for s in recorded)
    assert 0 < cached < before.moved("playground_upstream_input_tokens_total")


# Each fault of the simulator's (docs/simulator.md) on the session's first connection (request
# 1 is the prewarm, 2 the first step): the error it is counted as, and the reconnect it causes.
FAULTS = [
    ("upgrade_status=426", "refused", "fallback"),
    ("close_after_recv=2", "connection", "retry"),
    ("connection_limit_at=2", "connection_limit", "connection_limit"),
    ("error_frame=2:server_error", "retryable", None),
    ("forget_cache_before=2", "cache_miss", None),
]


@pytest.mark.parametrize(("fault", "error", "reconnect"), FAULTS)
@pytest.mark.django_db(transaction=True)
async def test_an_upstream_fault_counts_its_error_and_its_reconnect(
    session_tab: Callable[..., Any], fault: str, error: str, reconnect: str | None
) -> None:
    tab, session, found = await session_tab()
    found.simulator.faults.next(fault)
    errors = [sample("playground_upstream_errors_total", kind=k) for k in metrics.ERROR_KINDS]
    reconnects = [
        sample("playground_upstream_reconnects_total", kind=k) for k in metrics.RECONNECT_KINDS
    ]
    before = Before(*errors, *reconnects)
    await tab.open()
    await tab.turn("/chat 10 despite the fault")

    errors_moved = before.by_kind("playground_upstream_errors_total", metrics.ERROR_KINDS)
    assert errors_moved == {kind: int(kind == error) for kind in metrics.ERROR_KINDS}
    kinds = metrics.RECONNECT_KINDS
    reconnects_moved = before.by_kind("playground_upstream_reconnects_total", kinds)
    assert reconnects_moved == {kind: int(kind == reconnect) for kind in kinds}
    # The run recovered: its reply is there.
    assert (await steps_of(session))[-1].status == "completed"


@pytest.mark.django_db(transaction=True)
async def test_a_rotation_counts_as_a_reconnect(session_tab: Callable[..., Any]) -> None:
    tab, session, _ = await session_tab()
    before = Before(sample("playground_upstream_reconnects_total", kind="rotation"))
    await warmed(tab, session)
    runner = RUNNERS[str(session.pk)]
    old = runner.websocket.socket
    assert runner.command("rotate") is None  # staff's action; the age limit's is the same
    await eventually(lambda: runner.websocket.socket is not old and runner.prewarm.task is None)
    assert before.moved("playground_upstream_reconnects_total", kind="rotation") == 1


# -- fan-out and the outbox ----------------------------------------------------------------------


@pytest.fixture
async def redis_session(settings: Any) -> AsyncIterator[str]:
    """Redis at REDIS_URL for this test; a session id whose keys are deleted at the end."""
    require_redis()
    settings.REDIS_URL = REDIS_URL
    session_id = "metrics-fanout"
    yield session_id
    client = redis_client()
    keys = [key async for key in client.scan_iter(f"{KEY_PREFIX}{session_id}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_each_fan_out_batch_is_timed_from_its_first_event_to_the_channel_layer(
    redis_session: str, settings: Any
) -> None:
    # Long enough that a batch's wait for the interval stands out from Redis's round trips.
    settings.FANOUT_INTERVAL_MS = 300
    holder = "mailbox-metrics abc"
    buckets = ("playground_fanout_batch_seconds_count", "playground_fanout_batch_seconds_sum")
    fast = sample("playground_fanout_batch_seconds_bucket", le="0.1")
    before = Before(*(sample(name) for name in buckets), fast)
    assert await RedisLeases().acquire(redis_session, holder)
    feed = Feed(redis_session, Head("7", 3, 5, True, 2), holder)
    await feed.start(lambda: None)
    try:
        # After a quiet spell the first batch goes at once ...
        feed.publish(ItemStarted("m", "message", "assistant"))
        await eventually(lambda: before.moved("playground_fanout_batch_seconds_count") == 1)
        assert before.moved("playground_fanout_batch_seconds_bucket", le="0.1") == 1
        # ... the next, however many deltas it holds, waits for the interval's end.
        for text in ("a", "b", "c"):
            feed.publish(TextDelta("m", text))
        await eventually(lambda: before.moved("playground_fanout_batch_seconds_count") == 2)
    finally:
        await feed.close()
    assert before.moved("playground_fanout_batch_seconds_bucket", le="0.1") == 1
    assert before.moved("playground_fanout_batch_seconds_sum") >= 0.2


async def test_a_socket_too_far_behind_counts_one_outbox_resync() -> None:
    sent: list[str] = []
    resyncs: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    before = Before(sample("playground_outbox_resyncs_total"))
    outbox = Outbox(send, lambda: resyncs.append("slow"))
    try:
        # Held for a snapshot that has not come: every fragment waits.
        for number in range(LIMIT + 10):
            outbox.put(f"<p>{number}</p>")
        await asyncio.sleep(0)
    finally:
        await outbox.close()
    assert resyncs == ["slow"]
    assert before.moved("playground_outbox_resyncs_total") == 1


# -- the dashboard -------------------------------------------------------------------------------


def defined_names() -> list[str]:
    """The name of every metric agents/metrics.py defines, as /metrics exports it."""
    found = []
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            found += [family.name for family in metric.describe()]
    return found


def expressions(dashboard: dict[str, Any]) -> list[str]:
    return [
        str(target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def test_the_dashboard_draws_every_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    drawn = " ".join(expressions(dashboard))
    names = defined_names()
    assert "playground_fanout_batch_seconds" in names, "the metrics were not found"
    for name in names:
        # A counter's samples end in _total; a histogram's in _bucket, _sum and _count.
        assert re.search(rf"\b{name}(_total|_bucket|_sum|_count)?\b", drawn), name
    selector = r"(\{[^}]*\})?\[[^]]*\]\)"  # {labels}[range])
    ratio = (
        rf"rate\(playground_upstream_cached_tokens_total{selector}\)?\s*/\s*"
        rf"(sum\()?rate\(playground_upstream_input_tokens_total{selector}"
    )
    assert re.search(ratio, drawn), "the cache hit ratio is rate(cached) / rate(input)"
