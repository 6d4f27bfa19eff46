"""A scenario's processes: a simulator and a playground pointed at it, and the simulator's logs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2

from agents.bench.browser import Browser
from agents.bench.servers import API_KEY, PlaygroundProcess, SimProcess, start_all


@dataclass
class Stack:
    sim: SimProcess
    playground: PlaygroundProcess
    introspect: httpx2.AsyncClient

    @property
    def api_key(self) -> str:
        return API_KEY

    def browser(self) -> Browser:
        return Browser(self.playground.base_url)

    async def get(self, path: str) -> Any:
        response = await self.introspect.get(path)
        response.raise_for_status()
        return response.json()

    async def connection_ids(self) -> set[str]:
        return {c["id"] for c in (await self.get("/_sim/connections"))["data"]}

    async def new_logs(
        self, before: set[str], transport: str | None = None
    ) -> list[dict[str, Any]]:
        """Full logs of the connections opened since ``before`` (oldest first)."""
        summaries = (await self.get("/_sim/connections"))["data"]
        wanted = [
            c["id"]
            for c in summaries
            if c["id"] not in before and (transport is None or c["transport"] == transport)
        ]
        return [await self.get(f"/_sim/connections/{cid}") for cid in wanted]

    async def wait_warm(self, before: set[str], count: int = 1, wait: float = 30) -> None:
        """Until ``count`` new WebSocket connections have completed their first response."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            logs = await self.new_logs(before, "websocket")
            done = [log for log in logs if log["log"] and log["log"][0]["status"] == "completed"]
            if len(done) >= count:
                return
            await asyncio.sleep(0.02)
        raise TimeoutError(f"{count} upstream prewarm(s) did not complete within {wait:.0f} s")

    async def wait_open(self, count: int, wait: float = 120) -> None:
        """Until the simulator has accepted ``count`` WebSockets, the latest past their prewarm."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            # The simulator keeps the logs of its latest connections only: count, then check those.
            status = await self.get("/_sim/status")
            if status["websocket_connections"] >= count:
                summaries = (await self.get("/_sim/connections"))["data"]
                if all(c["requests"] >= 1 for c in summaries if not c["closed"]):
                    return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"{count} upstream sockets were not open within {wait:.0f} s")


@asynccontextmanager
async def stack(name: str, sim_args: list[str]) -> AsyncIterator[Stack]:
    """Start a simulator with ``sim_args`` and a playground using it; stop both afterwards."""
    sim = SimProcess(f"{name}-simulator", args=sim_args)
    playground = PlaygroundProcess(name, upstream=sim.base_url)
    await asyncio.to_thread(start_all, sim, playground)
    introspect = sim.client()
    try:
        yield Stack(sim, playground, introspect)
    finally:
        await introspect.aclose()
        await asyncio.to_thread(playground.stop)
        await asyncio.to_thread(sim.stop)
