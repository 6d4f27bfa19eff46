"""Fixtures of the unit tests: the in-process simulator on a port, Redis on demand."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agents.live.store import KEY_PREFIX, redis_client
from simulator import CostModel, SimulatorConfig
from tests.services import REDIS_URL, require_redis
from tests.unit.helpers import API_KEY, Served, StartSimulator, serve


@pytest.fixture
async def served() -> AsyncIterator[StartSimulator]:
    """Start in-process simulators in the test's event loop: ``await served(tokens_per_s=…)``
    (0: as fast as the socket takes them); every one stops at the end."""
    running: list[Served] = []

    async def start(tokens_per_s: float = 0.0, **config: Any) -> Served:
        costs = CostModel(tokens_per_s=tokens_per_s)
        running.append(await serve(SimulatorConfig(seed=7, costs=costs, **config)))
        return running[-1]

    yield start
    for found in running:
        await found.stop()


@pytest.fixture
def upstream_settings(settings: Any) -> Callable[[Served], Served]:
    """Point new session runners at an in-process simulator."""

    def use(found: Served) -> Served:
        settings.UPSTREAM_BASE_URL = found.base_url
        settings.OPENAI_API_KEY = API_KEY
        settings.UPSTREAM_IS_EMBEDDED = False
        settings.UPSTREAM_MODEL = "sim"
        return found

    return use


@pytest.fixture
async def redis_on(settings: Any) -> AsyncIterator[Callable[[], str]]:
    """Redis at REDIS_URL for this test (skipped without it, failed under CI=true);
    ``new_id()`` is a fresh session id whose keys are deleted at the end."""
    require_redis()
    settings.REDIS_URL = REDIS_URL
    ids: list[str] = []

    def new_id() -> str:
        ids.append(str(uuid.uuid4()))
        return ids[-1]

    yield new_id
    client = redis_client()
    for session_id in ids:
        keys = [key async for key in client.scan_iter(f"{KEY_PREFIX}{session_id}*")]
        if keys:
            await client.delete(*keys)
    await client.aclose()
