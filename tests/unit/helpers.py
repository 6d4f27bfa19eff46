"""Helpers of the unit tests: waiting for a condition, and the in-process simulator served
on a port of the test's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import uvicorn

from agents.models import Step
from simulator import Simulator, SimulatorConfig
from tests.simserver import free_port

API_KEY = "sk-unit-simulator"


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until ``check()`` holds (polling every 5 ms); fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"the condition did not hold within {within} s")
        await asyncio.sleep(0.005)


async def eventually_async(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    """:func:`eventually` for a check that must be awaited (polling every 10 ms)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"the condition did not hold within {within} s")
        await asyncio.sleep(0.01)


async def settle(rounds: int = 10) -> None:
    """Let the tasks that are ready run."""
    for _ in range(rounds):
        await asyncio.sleep(0)


@dataclass
class Served:
    """An in-process simulator listening on a port: its faults and logs are read in process."""

    simulator: Simulator
    port: int
    server: uvicorn.Server
    task: asyncio.Task[None]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def websocket_logs(self) -> list[list[tuple[str, str]]]:
        """Each WebSocket connection's requests, as (mode, status)."""
        return [
            [(r.mode, r.status) for r in log.requests]
            for log in self.simulator.introspection.connections.values()
            if log.transport == "websocket"
        ]

    def http_requests(self) -> int:
        return self.simulator.introspection.counters["http_requests"]

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


StartSimulator = Callable[..., Awaitable[Served]]  # the ``served`` fixture


async def serve(config: SimulatorConfig) -> Served:
    """Serve an in-process simulator with uvicorn, as ``manage.py simulator`` does."""
    simulator = Simulator(config)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            simulator,
            host="127.0.0.1",
            port=port,
            ws="websockets-sansio",
            lifespan="off",
            log_level="critical",
        )
    )
    task = asyncio.create_task(server.serve())
    for _ in range(1000):
        if server.started:
            return Served(simulator, port, server, task)
        if task.done():
            task.result()
        await asyncio.sleep(0.005)
    raise AssertionError("the in-process simulator did not start")


def step(**fields: Any) -> Step:
    """A step's record, not saved: a completed delta on a reused socket, unless ``fields``
    say otherwise."""
    values: dict[str, Any] = {
        "mode": "delta",
        "socket": "reused",
        "status": "completed",
        "bytes_sent": 1234,
        "ttft_ms": 42.0,
        "duration_ms": 310.0,
        "input_tokens": 900,
        "cached_tokens": 800,
        "output_tokens": 55,
        "started_ms": 0.0,
    }
    return Step(**{**values, **fields})
