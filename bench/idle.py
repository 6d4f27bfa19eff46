"""Idle tabs: what open paired sessions cost the server while nothing happens.

``sizes.idle_sessions`` tabs stay open, each session past one short reply (its runner, its
transcript and its upstream socket have all been used), then nothing happens for
``sizes.idle_seconds``: daphne's share of one core over that window. The baseline is the raw
server (``bench.rawserver``) holding as many idle connections for as long.
"""

from __future__ import annotations

import asyncio
import logging
import os
from functools import partial

from bench import crowd
from bench.results import Row, Target
from bench.scale import raw_server
from bench.servers import CpuMeter
from bench.sizes import Sizes
from bench.stack import stack
from devtools.tabs import Tab

log = logging.getLogger(__name__)

NAME = "idle-tabs"
WARM_UP = "/chat 5 warm up"


async def raw_idle(sizes: Sizes) -> tuple[float, int]:
    """The raw server's share of one core (%) holding the idle connections, and dropped ones."""
    async with raw_server() as raw:
        sockets = await crowd.raw_open(raw.ws_url, sizes.idle_sessions)
        await asyncio.sleep(sizes.settle)
        meter = CpuMeter({"raw": raw.pid}).start()
        await asyncio.sleep(sizes.idle_seconds)
        share = meter.shares()["raw"]
        dropped = sum(1 for socket in sockets if socket.state.name != "OPEN")
        await crowd.close_all(sockets)
    log.info("raw server: %d idle connections, %.2f %% of a core", len(sockets), share)
    return share, dropped


async def warmed(tab: Tab) -> bool:
    """One short reply on the tab's session; whether it ended."""
    try:
        await tab.run(WARM_UP, wait=60)
    except (OSError, TimeoutError, ConnectionError, RuntimeError):
        return False
    return True


async def idle_tabs(sizes: Sizes) -> list[Row]:
    raw_share, raw_dropped = await raw_idle(sizes)
    async with stack(NAME, ["--profile", "zero"]) as bench:
        browser = bench.browser()
        # The smoke run's simulator may have served earlier scenarios: count from where it is.
        opened = (await bench.get("/_sim/status"))["websocket_connections"]
        session_ids = await crowd.create_sessions(browser, sizes.idle_sessions)
        tabs = await crowd.open_tabs(browser, bench.playground.ws_base, session_ids)
        await bench.wait_open(opened + sizes.idle_sessions)
        runs = await crowd.bounded([partial(warmed, tab) for tab in tabs], 20)
        log.info("%s: %d paired sessions open, each past one reply", NAME, sum(runs))
        await asyncio.sleep(sizes.settle)
        pids = {"daphne": bench.playground.pid, "simulator": bench.sim.pid, "client": os.getpid()}
        meter = CpuMeter(pids).start()
        with bench.playground.phase("idle"):
            await asyncio.sleep(sizes.idle_seconds)
        shares, used = meter.shares(), meter.seconds()
        errors = runs.count(False) + sum(1 for tab in tabs if not tab.open_now)
        await crowd.close_all(tabs)
        await browser.close()
    others = ", ".join(f"{name} {share:.2f} %" for name, share in shares.items())
    count, seconds = sizes.idle_sessions, sizes.idle_seconds
    return [
        Row(
            NAME,
            f"server CPU % of one core, {count} idle paired sessions for {seconds:g} s",
            shares["daphne"],
            raw_share,
            Target("value", "<=", 0.5, " %"),
            note=f"daphne used {used['daphne'] * 1000:.0f} ms of CPU; shares over the window: "
            f"{others}; baseline: the raw server holding {count} idle connections as long; "
            f"errors: {errors} (failed warm-up replies, dropped sockets), raw server "
            f"{raw_dropped} dropped",
        )
    ]
