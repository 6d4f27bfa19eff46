"""Scenario ``scale`` (issue 15): token latency, CPU and memory as the streaming sessions grow,
on one daphne and on two sharing Redis.

Each configuration gets its own stack. One session per process runs a short turn first (the
process's one-time costs); then, step by step (``Sizes.scale_steps``), more tabs open, spread
evenly over the processes, until the step's count is open, and every open tab streams one reply
at ``Sizes.stream_rate`` tokens/s. Only the streaming sessions are open: no idle crowd.

With ``BENCH_SCALE_OUT=DIR`` the whole curve goes to ``DIR/scale.json`` and its chart to
``DIR/scale.svg`` (docs/scaling.md shows them); without it nothing is written.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from websockets.exceptions import ConnectionClosed

from bench import crowd
from bench.browser import Browser
from bench.points import LIMIT_MS, Curve, Point
from bench.results import Row, not_run
from bench.scale import streamed_sends
from bench.servers import CpuMeter, PlaygroundProcess
from bench.sizes import Sizes
from bench.stack import Stack, Unavailable, stack
from bench.stats import Sent, delivery, percentile
from bench.svg import write
from devtools.processes import cpu_seconds, rss_kib
from devtools.tabs import Tab, Turn

log = logging.getLogger(__name__)

NAME = "scale"
OUT_ENV = "BENCH_SCALE_OUT"
LOGS_KEPT = 500  # the simulator keeps the logs (send times) of its latest 500 connections
ONLY_STREAMING = "only the streaming sessions are open (no idle ones)"


def step_tokens(sizes: Sizes, streaming: int) -> int:
    return max(1, min(sizes.stream_tokens, sizes.scale_step_tokens // streaming))


def rss(processes: Sequence[PlaygroundProcess]) -> int:
    return sum(rss_kib(process.pid) for process in processes)


def daphne_cpu(processes: Sequence[PlaygroundProcess]) -> float:
    return sum(cpu_seconds(process.pid) for process in processes)


def machine_cpu() -> float:
    """CPU seconds the whole machine has been busy (all cores; /proc/stat without idle, iowait)."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


async def open_spread(browser: Browser, bench: Stack, session_ids: Sequence[str]) -> list[Tab]:
    """A tab on each session, the sessions dealt in turn to the processes (each runs its own)."""
    servers = bench.playgrounds
    shares = [session_ids[index :: len(servers)] for index in range(len(servers))]
    opened = await asyncio.gather(
        *(
            crowd.open_tabs(browser, server.ws_base, share)
            for server, share in zip(servers, shares, strict=True)
        )
    )
    return [tab for group in opened for tab in group]


@dataclass
class Timed:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    deltas: int = 0  # relayed (estimated from the timed turns for the others)


def timed_turns(
    turns: Sequence[Turn | None], tabs: Sequence[Tab], by_item: dict[str, list[Sent]]
) -> Timed:
    """Latencies of the turns whose sends the simulator still logs; the sessions with an error:
    a failed run, text lost or wrong (where it can be checked), or the socket closed."""
    found = Timed()
    timed, sent = 0, 0
    for turn, tab in zip(turns, tabs, strict=True):
        bad = turn is None or not tab.open_now
        if turn is not None:
            receipts = turn.receipts()
            sends = [one for item in receipts for one in by_item.get(item, [])]
            bad = bad or not receipts
            if sends:  # else its connection's log is no longer kept
                result = delivery(sends, receipts, turn.texts())
                found.latencies_ms += result.latencies_ms
                bad = bad or result.errors > 0
                timed, sent = timed + 1, sent + len(sends)
        found.errors += bad
    completed = sum(1 for turn in turns if turn is not None)
    found.deltas = round(sent / timed * completed) if timed else 0
    return found


async def streamed_turns(
    tabs: Sequence[Tab], message: str, seconds: float, failures: Counter[str]
) -> list[Turn | None]:
    """As :func:`bench.crowd.streamed_turns`, the starts spread over 1 s or, if shorter, the
    ``seconds`` a reply takes (the smoke run's replies take a few milliseconds); a socket the
    server closed is a failed run too. Why each failed goes to ``failures``."""

    async def one(tab: Tab, delay: float) -> Turn | None:
        await asyncio.sleep(delay)
        try:
            return await tab.run(message, seconds + 60)
        except ConnectionClosed as closed:  # 4013: the channel layer lost Redis
            failures[f"closed {closed.rcvd.code if closed.rcvd else 'without a code'}"] += 1
        except (OSError, TimeoutError, ConnectionError, RuntimeError) as error:
            failures[type(error).__name__] += 1
        return None

    offsets = crowd.stagger(len(tabs), min(1.0, seconds))
    return list(await asyncio.gather(*map(one, tabs, offsets)))


async def stream_step(bench: Stack, tabs: list[Tab], sizes: Sizes, base_rss: int) -> Point:
    """Every open tab streams one reply; the step's point."""
    servers, streaming = bench.playgrounds, len(tabs)
    tokens, rate = step_tokens(sizes, streaming), sizes.stream_rate
    pids = {f"daphne {n + 1}": server.pid for n, server in enumerate(servers)}
    watched = {**pids, "simulator": bench.sim.pid, "client": os.getpid()}
    meter = CpuMeter(watched).start()
    cpu_before, started, machine = daphne_cpu(servers), time.monotonic(), machine_cpu()
    ours = sum(cpu_seconds(pid) for pid in watched.values())
    failures: Counter[str] = Counter()
    with bench.playground.phase(f"stream-{streaming}"):
        message = f"/chat {tokens} the tides of the Bay of Fundy"
        turns = await streamed_turns(tabs, message, tokens / rate, failures)
    seconds, cpu, shares = time.monotonic() - started, daphne_cpu(servers), meter.busy()
    ours = sum(cpu_seconds(pid) for pid in watched.values()) - ours
    others = (machine_cpu() - machine - ours) / seconds * 100
    await asyncio.sleep(sizes.settle)
    per_session = (rss(servers) - base_rss) / streaming
    found = timed_turns(turns, tabs, await streamed_sends(bench))
    point = Point(
        streaming,
        tokens,
        percentile(found.latencies_ms, 50),
        percentile(found.latencies_ms, 99),
        (cpu - cpu_before) / found.deltas * 1e6 if found.deltas else math.nan,
        per_session,
        found.deltas,
        len(found.latencies_ms),
        found.errors,
        seconds,
        f"{shares}, rest of the machine {others:.0f} %",
        others,
        ", ".join(f"{count} {why}" for why, count in failures.most_common()),
    )
    log.info("%s, %d process(es), %d streaming: %s", NAME, len(servers), streaming, point)
    return point


async def measure(sizes: Sizes, processes: int) -> Curve:
    """The curve of one configuration, on its own stack."""
    rate = sizes.stream_rate
    # --seed: a simulator of its own in the smoke run too (concurrency's has the same cost).
    args = ["--profile", "zero", "--cost", f"tokens_per_s={rate:g}", "--seed", "15"]
    curve = Curve(processes)
    name = NAME if processes == 1 else f"{NAME}-{processes}p"
    async with stack(name, [*args, "--record-sends"], processes) as bench:
        browser = bench.browser()
        session_ids = await crowd.create_sessions(browser, max(sizes.scale_steps))
        opened = (await bench.get("/_sim/status"))["websocket_connections"]
        # One session per process first: the processes' one-time costs are not per session.
        warm = [
            await browser.tab(s.ws_base, await browser.new_session()).open()
            for s in bench.playgrounds
        ]
        for tab in warm:
            await tab.run("/chat 5 warm up", wait=60)
        base_rss = rss(bench.playgrounds)
        tabs: list[Tab] = []
        try:
            for streaming in sizes.scale_steps:
                tabs += await open_spread(browser, bench, session_ids[len(tabs) : streaming])
                await bench.wait_open(opened + len(warm) + len(tabs))
                await asyncio.sleep(sizes.settle)
                curve.points.append(await stream_step(bench, tabs, sizes, base_rss))
        finally:
            await crowd.close_all([*tabs, *warm])
            await browser.close()
    return curve


async def scale(sizes: Sizes) -> list[Row]:
    curves = [await measure(sizes, 1)]
    try:
        curves.append(await measure(sizes, 2))
    except Unavailable as missing:
        curves.append(Curve(2, not_run=str(missing)))
    if out := os.environ.get(OUT_ENV):
        write(Path(out), curves, sizes, LIMIT_MS)
        log.info("%s: wrote the curve and its chart to %s", NAME, out)
    return rows(curves, sizes)


def rows(curves: Sequence[Curve], sizes: Sizes) -> list[Row]:
    """Where each configuration crosses 50 ms p99, then each point's p99 (its p50 the baseline)."""
    rate, last = sizes.stream_rate, max(sizes.scale_steps)
    out: list[Row] = []
    reference: float = sizes.streaming  # the concurrency scenario's streaming sessions
    for curve in curves:
        metric = f"streaming sessions at which p99 token latency first exceeds 50 ms, {curve.label}"
        if curve.not_run:
            out.append(not_run(NAME, metric, curve.not_run))
            continue
        crossed = curve.crossing()
        value = crossed.streaming if crossed else last
        where = f"crosses at {value}" if crossed else f"not within {last}"
        against = "one process's" if out else f"the {sizes.streaming} streaming of concurrency"
        steps = ", ".join(map(str, sizes.scale_steps))
        note = (
            f"{where} (steps {steps} at {rate:g} tokens/s; {ONLY_STREAMING}); baseline: {against}"
        )
        out.append(Row(NAME, metric, value, reference, note=note))
        reference = value
    for curve in curves:
        out += [point_row(curve, point, sizes) for point in curve.points]
    return out


def point_row(curve: Curve, point: Point, sizes: Sizes) -> Row:
    timed = f"{point.timed:,} of {point.deltas:,} deltas timed"
    if point.streaming > LOGS_KEPT:
        timed += f" (the simulator keeps the send logs of its latest {LOGS_KEPT} connections)"
    return Row(
        NAME,
        f"token latency p99 ms (baseline: p50), {curve.label}, {point.streaming} streaming",
        point.p99_ms,
        point.p50_ms,
        note=f"{point.tokens} tokens each at {sizes.stream_rate:g}/s in {point.seconds:.1f} s; "
        f"daphne CPU {point.cpu_us_per_delta:.0f} µs per delta; "
        f"RSS {point.rss_kib_per_session:.0f} KiB per session; {timed}; {point.errors} errors"
        f"{f' (failed runs: {point.failures})' if point.failures else ''}; "
        f"share of one core: {point.cpu}",
    )
