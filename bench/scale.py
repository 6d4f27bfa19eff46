"""Scenario 6: a thousand paired sessions on one daphne, and on two sharing Redis.

The baseline is the raw ``websockets`` server (``bench.rawserver``) in its own process,
loaded the same way by the same client in the same run. The connect storms (scenario 8) are in
``bench.storm``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

from websockets.exceptions import ConnectionClosed

from bench import crowd
from bench.results import Row, Target, not_run
from bench.servers import CpuMeter, PlaygroundProcess, RawProcess, start_all
from bench.sizes import Sizes
from bench.stack import Stack, Unavailable, stack
from bench.stats import Delivery, Sent, delivery, percentile, sends_of
from devtools.processes import rss_kib
from devtools.tabs import Tab, Turn

log = logging.getLogger(__name__)

# What a healthy daphne prints: its start, and an access line per request and socket.
ROUTINE_RE = re.compile(
    r"^[\d.]+:\d+ - - \[|^(Starting server|HTTP/2 support|Configuring endpoint|Listening on)"
)
ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f-]{27}|\b\d[\d.:,]*\b")


@asynccontextmanager
async def raw_server() -> AsyncIterator[RawProcess]:
    raw = RawProcess("raw-server")
    await asyncio.to_thread(start_all, raw)
    try:
        yield raw
    finally:
        await asyncio.to_thread(raw.stop)


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
    """The raw server's KiB per idle connection, and the streaming load's latencies and CPU."""
    async with raw_server() as raw:
        before = rss_kib(raw.pid)
        sockets = await crowd.raw_open(raw.ws_url, sizes.sessions)
        await asyncio.sleep(sizes.settle)
        per_connection = (rss_kib(raw.pid) - before) / sizes.sessions
        log.info("raw server: %d connections, %.0f KiB each", len(sockets), per_connection)
        meter = CpuMeter({"raw": raw.pid}).start()
        streams = await crowd.raw_streams(
            sockets[-sizes.streaming :], sizes.stream_tokens, sizes.stream_rate
        )
        streams.cpu_seconds = meter.seconds()["raw"]
        streams.errors += sum(1 for socket in sockets if socket.state.name != "OPEN")
        await crowd.close_all(sockets)
    return per_connection, streams


def complaints(servers: list[PlaygroundProcess], limit: int = 3) -> str:
    """The servers' most frequent lines other than routine ones, ids blanked, with counts."""
    found: Counter[str] = Counter()
    for server in servers:
        for line in server.output().splitlines():
            if line.strip() and not ROUTINE_RE.search(line):
                found[f"{server.name}: {ID_RE.sub('…', line.strip())[:160]}"] += 1
    return "; ".join(f"{count}x {line}" for line, count in found.most_common(limit))


def per_delta_us(cpu_seconds: float, deltas: int) -> float:
    """CPU microseconds per delta relayed."""
    return cpu_seconds / deltas * 1e6 if deltas else math.nan


@dataclass
class Paired:
    """What the paired sessions' load measured on the playground's processes."""

    latencies_ms: list[float]
    errors: int
    why: str  # the errors by kind
    cpu_seconds: float  # of every daphne while streaming, together
    busy: str  # each process's share of one core while streaming
    per_session_kib: float  # RSS grown per idle paired session (every daphne together)
    complaints: str  # the servers' most frequent log lines beyond the routine, if any errors

    @property
    def cpu_us_per_delta(self) -> float:
        return per_delta_us(self.cpu_seconds, len(self.latencies_ms))


async def opened(tab: Tab) -> Tab | None:
    """The tab, open; None if the server closed it instead (a dropped socket: an error)."""
    try:
        return await tab.open(wait=60)
    except (OSError, TimeoutError, ConnectionClosed):
        return None


async def paired_load(name: str, bench: Stack, sizes: Sizes) -> Paired:
    """``sizes.sessions`` paired sessions spread evenly over the stack's processes (session k's
    tab, its first socket, on process k mod n: that process runs it), the last
    ``sizes.streaming`` of them streaming ``sizes.stream_tokens`` at ``sizes.stream_rate``."""
    try:
        return await load_of_pairs(name, bench, sizes)
    except Exception:
        log.warning("%s failed; the servers logged: %s", name, complaints(bench.playgrounds))
        raise


async def load_of_pairs(name: str, bench: Stack, sizes: Sizes) -> Paired:
    rate, servers = sizes.stream_rate, bench.playgrounds
    browser = bench.browser()
    session_ids = await crowd.create_sessions(browser, sizes.sessions + len(servers))
    log.info("%s: %d sessions created", name, len(session_ids))
    # One session on each process first, so its one-time costs are not counted per session.
    warms, warm_items = [], set()
    for server in servers:
        warm = await browser.tab(server.ws_base, session_ids.pop()).open()
        warm_items |= set((await warm.run("/chat 5 warm up", wait=60)).receipts())
        warms.append(warm)
    before = sum(rss_kib(server.pid) for server in servers)
    with bench.playground.phase("open"):
        bases = [server.ws_base for server in servers]
        jobs = [
            partial(opened, browser.tab(bases[k % len(bases)], session_id))
            for k, session_id in enumerate(session_ids)
        ]
        tabs = [tab for tab in await crowd.bounded(jobs, crowd.BATCH) if tab is not None]
        refused = len(session_ids) - len(tabs)
        await bench.wait_open(len(tabs) + len(servers))
    await asyncio.sleep(sizes.settle)
    per_session = (sum(rss_kib(server.pid) for server in servers) - before) / sizes.sessions
    log.info("%s: %d paired sessions open, %.0f KiB each", name, len(tabs), per_session)
    # The last sockets opened: the simulator keeps the logs of its latest 500 connections.
    streaming = tabs[-sizes.streaming :]
    message = f"/chat {sizes.stream_tokens} the tides of the Bay of Fundy"
    daphnes = {f"daphne{'' if k == 0 else k + 1}": server.pid for k, server in enumerate(servers)}
    meter = CpuMeter({**daphnes, "simulator": bench.sim.pid, "client": os.getpid()}).start()
    with bench.playground.phase("stream"):
        wait = sizes.stream_tokens / rate + 60
        turns = await crowd.streamed_turns(streaming, message, wait)
    used, busy = meter.seconds(), meter.busy()
    log.info("%s: %d runs streamed", name, len(turns))
    sends = await streamed_sends(bench)
    found, errors = deliveries(turns, {k: v for k, v in sends.items() if k not in warm_items})
    failed = turns.count(None)
    dropped = sum(1 for tab in [*tabs, *warms] if not tab.open_now)
    why = (
        f"{failed} failed runs, {errors - failed} with lost or wrong text, {dropped} sockets "
        f"closed by the end, {refused} closed while opening"
    )
    errors += refused + dropped
    await crowd.close_all([*tabs, *warms])
    await browser.close()
    cpu = sum(used[daphne] for daphne in daphnes)
    said = complaints(servers) if errors else ""
    return Paired(found.latencies_ms, errors, why, cpu, busy, per_session, said)


def sim_args(sizes: Sizes) -> list[str]:
    return ["--profile", "zero", "--cost", f"tokens_per_s={sizes.stream_rate:g}", "--record-sends"]


def load_of(sizes: Sizes) -> str:
    return (
        f"{sizes.sessions:,} sessions open, {sizes.streaming} streaming at "
        f"{sizes.stream_rate:g} tokens/s"
    )


def latency_rows(name: str, sizes: Sizes, ours: Paired, raw: crowd.RawStreams) -> list[Row]:
    """Token latency p50 and p99, and the errors, against the raw server's."""
    load, latencies, raw_latencies = load_of(sizes), ours.latencies_ms, raw.latencies_ms
    return [
        Row(
            name,
            f"token latency p50 ms ({load})",
            percentile(latencies, 50),
            percentile(raw_latencies, 50),
            note=f"{len(latencies):,} deltas; baseline: the raw server streaming the same load "
            f"to the same client; share of one core while streaming: {ours.busy}",
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
            ours.errors,
            raw.errors,
            Target("value", "<=", 0),
            note=ours.why + (f"; the servers logged: {ours.complaints}" if ours.complaints else ""),
        ),
    ]


def cpu_row(name: str, metric: str, ours: Paired, raw: crowd.RawStreams, target: bool) -> Row:
    raw_deltas = len(raw.latencies_ms)
    return Row(
        name,
        metric,
        ours.cpu_us_per_delta,
        per_delta_us(raw.cpu_seconds, raw_deltas),
        Target("value", "<=", 40.0, " µs") if target else None,
        note=f"daphne: {ours.cpu_seconds:.2f} s of CPU while streaming, "
        f"{len(ours.latencies_ms):,} deltas relayed; raw server: {raw.cpu_seconds:.2f} s, "
        f"{raw_deltas:,} deltas",
    )


async def concurrency(sizes: Sizes) -> list[Row]:
    name = "concurrency"
    per_connection, raw = await raw_concurrency(sizes)
    async with stack(name, sim_args(sizes)) as bench:
        ours = await paired_load(name, bench, sizes)
    return [
        *latency_rows(name, sizes, ours, raw),
        Row(
            name,
            "server RSS KiB per idle paired session vs raw server per connection",
            ours.per_session_kib,
            per_connection,
            Target("value", "<=", 100.0, " KiB"),
            note="a paired session: a browser socket, its runner and its warm upstream socket",
        ),
        cpu_row(name, "server CPU µs per relayed delta", ours, raw, target=True),
    ]


async def concurrency_two_processes(sizes: Sizes) -> list[Row]:
    """The same load on two daphne processes sharing Redis, the sessions spread evenly: each
    tab is on the process that runs its session."""
    name = "concurrency-2p"
    _, raw = await raw_concurrency(sizes)
    try:
        async with stack(name, sim_args(sizes), processes=2) as bench:
            ours = await paired_load(name, bench, sizes)
    except Unavailable as missing:
        metrics = ("token latency p50 and p99", "errors", "server CPU µs per relayed delta")
        return [not_run(name, f"{metric}, two processes", str(missing)) for metric in metrics]
    rows = latency_rows(name, sizes, ours, raw)
    rows[0].note += f"; RSS per idle paired session, both processes: {ours.per_session_kib:.0f} KiB"
    metric = "server CPU µs per relayed delta (both processes together)"
    return [*rows, cpu_row(name, metric, ours, raw, target=False)]
