"""Many sockets at once: sessions and tabs in bulk, and the same crowd on the raw server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.browser import Browser
from devtools.tabs import Tab, Turn

BATCH = 50  # sockets opened at once when building a crowd (the storm opens all at once)


async def bounded[T](jobs: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run the jobs with at most ``limit`` in flight; results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(one(job) for job in jobs)))


async def create_sessions(browser: Browser, count: int) -> list[str]:
    # The first request creates the browser's Django session (its cookie): alone, not in a race.
    first = await browser.new_session()
    return [first, *await bounded([browser.new_session] * (count - 1), 4)]


async def open_tabs(browser: Browser, ws_base: str, session_ids: Sequence[str]) -> list[Tab]:
    jobs = [browser.tab(ws_base, session_id).open for session_id in session_ids]
    return await bounded(jobs, BATCH)


async def close_all(sockets: Sequence[Tab | ClientConnection]) -> None:
    async def close(socket: Tab | ClientConnection) -> None:
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(socket.close(), 10)

    await bounded([partial(close, socket) for socket in sockets], 200)


def stagger(count: int, seconds: float, seed: int = 1) -> list[float]:
    """Start offsets spread at random over ``seconds``: streams do not tick in lockstep."""
    rng = random.Random(seed)
    return [rng.uniform(0, seconds) for _ in range(count)]


async def streamed_turns(tabs: Sequence[Tab], message: str, wait: float) -> list[Turn | None]:
    """Every tab sends ``message`` at a staggered start; None for a tab whose run failed (its
    socket closed, or a frame was late by over ``wait`` seconds)."""

    async def one(tab: Tab, delay: float) -> Turn | None:
        await asyncio.sleep(delay)
        try:
            return await tab.run(message, wait)
        except (OSError, TimeoutError, ConnectionError, ConnectionClosed, RuntimeError):
            return None

    offsets = stagger(len(tabs), 1.0)
    return list(
        await asyncio.gather(*(one(tab, delay) for tab, delay in zip(tabs, offsets, strict=True)))
    )


async def raw_open(url: str, count: int) -> list[ClientConnection]:
    """``count`` sockets to the raw server, each past its greeting frame."""

    async def one() -> ClientConnection:
        socket, _ = await raw_opened(url)
        assert isinstance(socket, ClientConnection)
        return socket

    return await bounded([one] * count, BATCH)


@dataclass
class RawStreams:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    cpu_seconds: float = 0.0  # the raw server's, while it streamed (bench.scale.raw_concurrency)


async def raw_streams(sockets: Sequence[ClientConnection], tokens: int, rate: float) -> RawStreams:
    """The streaming load of the concurrency scenario, served by the raw server."""
    result = RawStreams()

    async def one(socket: ClientConnection, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            await socket.send(f"stream {tokens} {rate:g}")
            received = 0
            async with asyncio.timeout(tokens / rate + 60):
                while (frame := await socket.recv()) != "done":
                    arrived = time.monotonic()
                    result.latencies_ms.append((arrived - json.loads(frame)["t"]) * 1000)
                    received += 1
            result.errors += received != tokens
        except (OSError, TimeoutError, ConnectionError):
            result.errors += 1

    offsets = stagger(len(sockets), 1.0)
    await asyncio.gather(
        *(one(socket, delay) for socket, delay in zip(sockets, offsets, strict=True))
    )
    return result


@dataclass
class Storm:
    seconds: float  # from the first connect to the last socket's first frame
    failures: int
    sockets: list[Tab | ClientConnection]
    reasons: Counter[str]  # the failures' exception types

    def why(self) -> str:
        return ", ".join(f"{count} {kind}" for kind, count in self.reasons.most_common())


Opened = tuple[Tab | ClientConnection, float]  # a socket and when its first frame arrived


async def storm(jobs: Sequence[Callable[[], Awaitable[Opened]]]) -> Storm:
    """Every socket opened at once; each counts once its first frame arrived."""
    started = time.monotonic()
    outcomes = await asyncio.gather(*(job() for job in jobs), return_exceptions=True)
    opened = [o for o in outcomes if not isinstance(o, BaseException)]
    reasons = Counter(type(o).__name__ for o in outcomes if isinstance(o, BaseException))
    last = max((at for _, at in opened), default=started)
    sockets = [socket for socket, _ in opened]
    return Storm(last - started, len(jobs) - len(opened), sockets, reasons)


async def tab_opened(tab: Tab) -> Opened:
    await tab.open(wait=60)
    assert tab.first_frame is not None
    return tab, tab.first_frame.at


async def raw_opened(url: str) -> Opened:
    socket = await connect(url, compression=None, max_size=None, open_timeout=60)
    await asyncio.wait_for(socket.recv(), 60)
    return socket, time.monotonic()
