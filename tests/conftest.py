from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from openai import AsyncOpenAI, OpenAI

from agents.simulator import Simulator, SimulatorConfig
from tests.simserver import SimServer


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
        server = SimServer(list(args)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


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
