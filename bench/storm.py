"""Scenario 8: a thousand sockets at once (also with a busy neighbour: a process spinning a core
meanwhile).

The baseline is the raw ``websockets`` server (``bench.rawserver``) in its own process, stormed
the same way by the same client in the same run.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import partial

from bench import crowd
from bench.results import Row, Target
from bench.scale import raw_server
from bench.servers import CpuMeter
from bench.sizes import Sizes
from bench.stack import stack

log = logging.getLogger(__name__)


@contextmanager
def busy_neighbour() -> Iterator[int]:
    """A process spinning one core (as other work on the machine would); its pid."""
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield spin.pid
    finally:
        spin.kill()
        spin.wait()


async def connect_storm(sizes: Sizes) -> list[Row]:
    return await storm_rows("connect-storm", sizes, busy=False)


async def connect_storm_busy(sizes: Sizes) -> list[Row]:
    return await storm_rows("connect-storm-busy", sizes, busy=True)


async def storm_rows(name: str, sizes: Sizes, busy: bool) -> list[Row]:
    """The storm on the raw server, then on the playground, each with the neighbour if busy."""
    count = sizes.storm
    neighbour = busy_neighbour if busy else nullcontext
    async with raw_server() as raw:
        with neighbour():
            baseline = await crowd.storm([partial(crowd.raw_opened, raw.ws_url)] * count)
        log.info("raw server: %d sockets in %.2f s", len(baseline.sockets), baseline.seconds)
        await crowd.close_all(baseline.sockets)
    async with stack(name, ["--profile", "zero"]) as bench:
        browser = bench.browser()
        session_ids = await crowd.create_sessions(browser, count + 1)
        warm = await browser.tab(bench.playground.ws_base, session_ids.pop()).open()
        await warm.close()
        ws_base = bench.playground.ws_base
        tabs = [browser.tab(ws_base, session_id) for session_id in session_ids]
        with neighbour() as spinning:
            pids = {"daphne": bench.playground.pid, "client": os.getpid()}
            if spinning:
                pids["neighbour"] = spinning
            meter = CpuMeter(pids).start()
            with bench.playground.phase("storm"):
                ours = await crowd.storm([partial(crowd.tab_opened, tab) for tab in tabs])
            cpu = meter.busy()
        log.info("%s: %d browser sockets in %.2f s", name, len(ours.sockets), ours.seconds)
        await crowd.close_all(ours.sockets)
        await browser.close()
    both = " (both with a process spinning a core meanwhile)" if busy else ""
    return [
        Row(
            name,
            f"s until {count:,} simultaneous sockets each had their first frame",
            ours.seconds,
            baseline.seconds,
            None if busy else Target("ratio", "<=", 4.0),
            note=f"browser sockets (each to its own session) vs the raw server's sockets{both}; "
            f"CPU of one core during the storm: {cpu}",
        ),
        Row(
            name,
            "failed sockets",
            ours.failures,
            baseline.failures,
            Target("value", "<=", 0),
            note=f"playground: {ours.why() or 'none'}; raw server: {baseline.why() or 'none'}",
        ),
    ]
