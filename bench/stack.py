"""A scenario's processes: a simulator and a playground pointed at it, and the simulator's logs."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx2
import redis

from bench.browser import Browser
from bench.servers import API_KEY, PlaygroundProcess, Process, SimProcess, start_all


@dataclass
class Stack:
    sim: SimProcess
    playgrounds: list[PlaygroundProcess]
    introspect: httpx2.AsyncClient

    @property
    def playground(self) -> PlaygroundProcess:
        """The first (or only) process of the site."""
        return self.playgrounds[0]

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


class Unavailable(Exception):
    """A service the scenario needs is not there: its rows say so instead of a number."""


def bench_redis_url() -> str:
    return os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def check_redis(url: str) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        raise Unavailable(f"Redis is not answering at {url} (BENCH_REDIS_URL): {error}") from error
    finally:
        client.close()


@asynccontextmanager
async def stack(name: str, sim_args: list[str], processes: int = 1) -> AsyncIterator[Stack]:
    """A simulator with ``sim_args`` and a playground using it: :func:`own_stack`, or inside
    :func:`shared_stacks` (the smoke run) the running one of an earlier scenario that asked for
    the same."""
    shared = _shared.get()
    if shared is None:
        async with own_stack(name, sim_args, processes) as bench:
            yield bench
    else:
        async with shared.stack(name, sim_args, processes) as bench:
            yield bench


@asynccontextmanager
async def own_stack(name: str, sim_args: list[str], processes: int = 1) -> AsyncIterator[Stack]:
    """Start a simulator with ``sim_args`` and a playground using it; stop both afterwards.

    With ``processes`` > 1, that many daphne processes serve one site, as docs/deployment.md
    "Production" section runs them: one database (here SQLite, which the processes share on one
    host) and Redis (``BENCH_REDIS_URL``) for the channel layer, the leases and the log.
    """
    env: dict[str, str] = {}
    if processes > 1:
        env["REDIS_URL"] = bench_redis_url()
        check_redis(env["REDIS_URL"])
    sim = SimProcess(f"{name}-simulator", args=sim_args)
    first = PlaygroundProcess(name, upstream=sim.base_url, env=env)
    await asyncio.to_thread(start_all, sim, first)  # the first migrates the database
    playgrounds = [first]
    try:
        for number in range(1, processes):
            other = PlaygroundProcess(
                f"{name}-{number}", upstream=sim.base_url, env=env, database=first.database
            )
            playgrounds.append(other)
            await asyncio.to_thread(start_all, other)
    except BaseException:
        await asyncio.to_thread(stop_all, [*reversed(playgrounds), sim])
        raise
    introspect = sim.client()
    try:
        yield Stack(sim, playgrounds, introspect)
    finally:
        await introspect.aclose()
        # The later processes use the first one's database: they stop before it goes.
        await asyncio.to_thread(stop_all, [*reversed(playgrounds), sim])


def stop_all(processes: list[PlaygroundProcess | SimProcess]) -> None:
    for process in processes:
        process.stop()


StackKey = tuple[tuple[str, ...], int]  # the simulator's arguments, the number of playgrounds


class SharedStacks:
    """Stacks kept running from one scenario to the next that asks for the same simulator (by
    :func:`common_args`) and number of processes: the smoke run's, see :func:`shared_stacks`."""

    def __init__(self) -> None:
        self.running: dict[StackKey, tuple[AbstractAsyncContextManager[Stack], Stack]] = {}

    @asynccontextmanager
    async def stack(self, name: str, sim_args: list[str], processes: int) -> AsyncIterator[Stack]:
        args = common_args(sim_args)
        key = (tuple(args), processes)
        if key not in self.running:
            started = own_stack(name, args, processes)
            self.running[key] = (started, await started.__aenter__())
        manager, bench = self.running[key]
        try:
            yield bench
        except BaseException:
            # A scenario that failed may have left runs or sockets behind: no other gets them.
            del self.running[key]
            await manager.__aexit__(None, None, None)
            raise

    async def stop(self) -> None:
        """Kill every process, then let each stack clean up after them: nothing is measured any
        more, and an orderly exit costs each daphne ~0.5 s of CPU."""
        running = list(self.running.values())
        self.running.clear()
        processes = [p for _, bench in running for p in (*bench.playgrounds, bench.sim)]
        await asyncio.to_thread(kill_all, processes)
        for manager, _ in running:
            await manager.__aexit__(None, None, None)


def common_args(sim_args: list[str]) -> list[str]:
    """``sim_args`` with send times recorded and without ``--time-scale 1`` (the default): the
    same simulator for the scenarios that ask for it and for those that do not read send times."""
    args: list[str] = []
    rest = iter(sim_args)
    for arg in rest:
        if arg == "--time-scale":
            scale = next(rest)
            if float(scale) != 1.0:
                args += [arg, scale]
        elif arg != "--record-sends":
            args.append(arg)
    return [*args, "--record-sends"]


def kill_all(processes: list[Process]) -> None:
    for process in processes:
        process.kill()


_shared: ContextVar[SharedStacks | None] = ContextVar("shared_stacks", default=None)


@asynccontextmanager
async def shared_stacks(enabled: bool) -> AsyncIterator[None]:
    """If ``enabled`` (the smoke run), scenarios in this block share stacks: one asking for the
    simulator and process count of an earlier one gets that one's processes, still running.
    Starting them was most of a smoke run's time (~2 s of CPU for each simulator and daphne);
    its tiny sizes leave too little behind to matter to the next scenario, and every scenario's
    code still runs. The full run never shares: each scenario measures processes that served
    nothing else."""
    if not enabled:
        yield
        return
    shared = SharedStacks()
    token = _shared.set(shared)
    try:
        yield
    finally:
        _shared.reset(token)
        await shared.stop()
