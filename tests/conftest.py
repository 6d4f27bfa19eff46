from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import SyncToAsync
from django.conf import settings
from django.db import connections
from openai import AsyncOpenAI, OpenAI
from playwright.sync_api import Browser, sync_playwright

from agents.live.registry import RUNNERS
from agents.live.runner import SessionRunner
from agents.upstream.clients import close_clients
from devtools.processes import child_env, manage, run
from devtools.static import collected_static
from playground import quotas
from simulator import Simulator, SimulatorConfig
from tests.services import CHROMIUM, require_chromium
from tests.simserver import SimServer

# Marks each test unit, integration or e2e (make test-fast runs the unit ones); guards the
# PostgreSQL pass.
pytest_plugins = ["tests.markers"]

# Pages rendered in this process name their static files by hashed name, as a served process
# does (DEBUG is off): from the collected files every child serves too.
settings.STATIC_ROOT = collected_static()
os.environ["STATIC_ROOT"] = str(settings.STATIC_ROOT)  # and the commands tests start (bench)


@pytest.fixture(autouse=True)
def _close_async_orm_connections() -> Iterator[None]:
    """The async ORM queries from asgiref's one shared thread; its connection outlives the test,
    and PostgreSQL will not drop the test database while it is open."""
    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()


@pytest.fixture(autouse=True)
def _fresh_quota_counters() -> None:
    """The in-process quota counters (new sessions per address) start empty in every test:
    the test client's address is always 127.0.0.1."""
    quotas.reset()


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database as ``make run`` migrates it, made once per worker: live servers start on a
    copy of it (``LiveServer(template=...)``)."""
    database = tmp_path_factory.mktemp("migrated") / "db.sqlite3"
    run(manage("migrate", "--no-input"), child_env(DATABASE_URL=f"sqlite:///{database}"))
    return database


@pytest.fixture(scope="session")
def sim_server() -> Iterator[SimServer]:
    """One shared standalone simulator (profile zero, seed 7) for tests that only read it."""
    server = SimServer(["--seed", "7"]).start()
    yield server
    server.stop()


@pytest.fixture
def start_sim() -> Iterator[Callable[..., SimServer]]:
    """Start a dedicated standalone simulator with the given command-line arguments."""
    servers: list[SimServer] = []

    def start(*args: str) -> SimServer:
        server = SimServer(list(args))
        servers.append(server)  # stopped at the end even if it fails to start
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium under Playwright (its own browser download is never used)."""
    require_chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def client(sim_server: SimServer) -> OpenAI:
    return OpenAI(api_key=sim_server.api_key, base_url=sim_server.base_url, max_retries=0)


@pytest.fixture
def aclient(sim_server: SimServer) -> AsyncOpenAI:
    return AsyncOpenAI(api_key=sim_server.api_key, base_url=sim_server.base_url, max_retries=0)


@pytest.fixture
def simulator() -> Simulator:
    """An in-process simulator (profile zero), driven with ASGI communicators."""
    return Simulator(SimulatorConfig(seed=7))


@pytest.fixture
def use_upstream(settings: Any) -> Callable[[SimServer], SimServer]:
    """Point new session runners at the given standalone simulator."""

    def use(server: SimServer) -> SimServer:
        settings.UPSTREAM_BASE_URL = server.base_url
        settings.OPENAI_API_KEY = server.api_key
        settings.UPSTREAM_IS_EMBEDDED = False
        settings.UPSTREAM_MODEL = "sim"
        return server

    return use


@pytest.fixture
async def runners() -> AsyncIterator[dict[str, SessionRunner]]:
    """This process's session runners; every one is closed when the test ends."""
    yield RUNNERS
    for runner in list(RUNNERS.values()):
        await runner.close()
    RUNNERS.clear()
    await close_clients()
