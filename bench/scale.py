"""Scenarios 6 and 8: a thousand paired sessions on one daphne, and a thousand sockets at once
(also with a busy neighbour: a process spinning a core meanwhile).

The baseline is the raw ``websockets`` server (``bench.rawserver``) in its own process,
loaded the same way by the same client in the same run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext
from functools import partial

from bench import crowd
from bench.results import Row, Target
from bench.servers import CpuMeter, RawProcess, start_all
from bench.sizes import Sizes
from bench.stack import Stack, stack
from bench.stats import Delivery, Sent, delivery, percentile, sends_of
from devtools.processes import rss_kib
from devtools.tabs import Turn

log = logging.getLogger(__name__)


@asynccontextmanager
async def raw_server() -> AsyncIterator[RawProcess]:
    raw = RawProcess("raw-server")
    await asyncio.to_thread(start_all, raw)
    try:
        yield raw
    finally:
        await asyncio.to_thread(raw.stop)


@contextmanager
def busy_neighbour() -> Iterator[int]:
    """A process spinning one core (as other work on the machine would); its pid."""
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield spin.pid
    finally:
        spin.kill()
        spin.wait()


async def streamed_sends(bench: Stack) -> dict[str, list[Sent]]:
    """Every streamed delta the simulator logged, by item (only connections past a prewarm)."""
    summaries = (await bench.get("/_sim/connections"))["data"]
    by_item: dict[str, list[Sent]] = {}
    for summary in summaries:
        if summary["requests"] >= 2:
            log = await bench.get(f"/_sim/connections/{summary['id']}")
            for sent in sends_of(log):
                by_item.setdefault(sent.item, []).append(sent)
    return by_item


def deliveries(turns: list[Turn | None], by_item: dict[str, list[Sent]]) -> tuple[Delivery, int]:
    """All turns' latencies together, and the errors: failed runs, lost or wrong text."""
    latencies: list[float] = []
    errors = sum(1 for turn in turns if turn is None)
    matched: set[str] = set()
    for turn in turns:
        if turn is None:
            continue
        texts, receipts = turn.texts(), turn.receipts()
        sends = [sent for item in receipts for sent in by_item.get(item, [])]
        matched |= set(receipts)
        found = delivery(sends, receipts, texts)
        latencies += found.latencies_ms
        errors += bool(found.errors or not sends)
    errors += len(set(by_item) - matched)  # streamed upstream, never shown to a browser
    return Delivery(latencies, 0, 0), errors


async def raw_concurrency(sizes: Sizes) -> tuple[float, crowd.RawStreams]:
    """The raw server's KiB per idle connection, and the streaming load's latencies."""
    async with raw_server() as raw:
        before = rss_kib(raw.pid)
        sockets = await crowd.raw_open(raw.ws_url, sizes.sessions)
        await asyncio.sleep(sizes.settle)
        per_connection = (rss_kib(raw.pid) - before) / sizes.sessions
        log.info("raw server: %d connections, %.0f KiB each", len(sockets), per_connection)
        streams = await crowd.raw_streams(
            sockets[-sizes.streaming :], sizes.stream_tokens, sizes.stream_rate
        )
        streams.errors += sum(1 for socket in sockets if socket.state.name != "OPEN")
        await crowd.close_all(sockets)
    return per_connection, streams


async def concurrency(sizes: Sizes) -> list[Row]:
    name, rate = "concurrency", sizes.stream_rate
    per_connection, raw = await raw_concurrency(sizes)
    args = ["--profile", "zero", "--cost", f"tokens_per_s={rate:g}", "--record-sends"]
    async with stack(name, args) as bench:
        browser = bench.browser()
        session_ids = await crowd.create_sessions(browser, sizes.sessions + 1)
        log.info("%s: %d sessions created", name, len(session_ids))
        # One session first, so the process's one-time costs are not counted per session.
        warm = await browser.tab(bench.playground.ws_base, session_ids.pop()).open()
        warm_items = set((await warm.run("/chat 5 warm up", wait=60)).receipts())
        before = rss_kib(bench.playground.pid)
        with bench.playground.phase("open"):
            tabs = await crowd.open_tabs(browser, bench.playground.ws_base, session_ids)
            await bench.wait_open(sizes.sessions + 1)
        await asyncio.sleep(sizes.settle)
        per_session = (rss_kib(bench.playground.pid) - before) / sizes.sessions
        log.info("%s: %d paired sessions open, %.0f KiB each", name, len(tabs), per_session)
        # The last sockets opened: the simulator keeps the logs of its latest 500 connections.
        streaming = tabs[-sizes.streaming :]
        message = f"/chat {sizes.stream_tokens} the tides of the Bay of Fundy"
        meter = CpuMeter(
            {"daphne": bench.playground.pid, "simulator": bench.sim.pid, "client": os.getpid()}
        ).start()
        with bench.playground.phase("stream"):
            wait = sizes.stream_tokens / rate + 60
            turns = await crowd.streamed_turns(streaming, message, wait)
        cpu = meter.busy()
        log.info("%s: %d runs streamed", name, len(turns))
        sends = await streamed_sends(bench)
        found, errors = deliveries(turns, {k: v for k, v in sends.items() if k not in warm_items})
        errors += sum(1 for tab in [*tabs, warm] if not tab.open_now)
        await crowd.close_all([*tabs, warm])
        await browser.close()
    load = f"{sizes.sessions:,} sessions open, {sizes.streaming} streaming at {rate:g} tokens/s"
    latencies, raw_latencies = found.latencies_ms, raw.latencies_ms
    return [
        Row(
            name,
            f"token latency p50 ms ({load})",
            percentile(latencies, 50),
            percentile(raw_latencies, 50),
            note=f"{len(latencies):,} deltas; baseline: the raw server streaming the same load "
            f"to the same client; share of one core while streaming: {cpu}",
        ),
        Row(
            name,
            f"token latency p99 ms ({load})",
            percentile(latencies, 99),
            percentile(raw_latencies, 99),
            Target("value", "<=", 50.0, " ms"),
        ),
        Row(
            name,
            "errors (failed runs, lost or wrong text, dropped sockets)",
            errors,
            raw.errors,
            Target("value", "<=", 0),
        ),
        Row(
            name,
            "server RSS KiB per idle paired session vs raw server per connection",
            per_session,
            per_connection,
            Target("value", "<=", 100.0, " KiB"),
            note="a paired session: a browser socket, its runner and its warm upstream socket",
        ),
    ]


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
