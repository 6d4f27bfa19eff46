"""Scenarios 1, 2 and 5: what the playground adds to an agent run, and WebSocket vs HTTP."""

from __future__ import annotations

from bench.agentrun import Run, direct_run, playground_run
from bench.results import Row, Target
from bench.sizes import Sizes
from bench.stack import stack
from bench.stats import median

WARMUP_STEPS = 2  # one untimed run first: a fresh process compiles templates and queries


def sim_args(profile: str, sizes: Sizes) -> list[str]:
    scale = sizes.realistic_time_scale if profile == "realistic" else 1.0
    return ["--profile", profile, "--time-scale", f"{scale:g}"]


async def overhead(name: str, profile: str, limit: float, sizes: Sizes) -> list[Row]:
    """A research run through the playground vs the direct client, alternating, median of N."""
    steps = sizes.research_steps
    runs = sizes.zero_runs if profile == "zero" else sizes.realistic_runs
    async with stack(name, sim_args(profile, sizes)) as bench:
        browser = bench.browser()
        await playground_run(bench, browser, WARMUP_STEPS)
        await direct_run(bench, WARMUP_STEPS)
        ours: list[Run] = []
        theirs: list[Run] = []
        for _ in range(runs):
            ours.append(await playground_run(bench, browser, steps, "runs"))
            theirs.append(await direct_run(bench, steps))
        await browser.close()
    value = median([run.seconds for run in ours])
    baseline = median([run.seconds for run in theirs])
    per_step = (value - baseline) / (steps + 1) * 1000
    return [
        Row(
            name,
            f"{steps}-tool-call run, s (median of {runs})",
            value,
            baseline,
            Target("ratio", "<=", limit),
            note=f"profile {profile}: the playground adds {per_step:.1f} ms per response "
            f"({steps + 1} responses); baseline: the SDK client, same simulator",
        )
    ]


async def overhead_zero(sizes: Sizes) -> list[Row]:
    return await overhead("overhead-zero", "zero", 1.25, sizes)


async def overhead_realistic(sizes: Sizes) -> list[Row]:
    return await overhead("overhead-realistic", "realistic", 1.02, sizes)


async def ws_vs_http(sizes: Sizes) -> list[Row]:
    """The same run through the playground over WebSocket, HTTP store=false and store=true."""
    name, steps = "ws-vs-http", sizes.research_steps
    async with stack(name, sim_args("realistic", sizes)) as bench:
        browser = bench.browser()
        await playground_run(bench, browser, WARMUP_STEPS)
        ws = await playground_run(bench, browser, steps, "websocket")
        full = await playground_run(bench, browser, steps, "http", transport="http", store=False)
        stored = await playground_run(bench, browser, steps, "store", transport="http", store=True)
        direct = await direct_run(bench, steps)
        await browser.close()
    faster = Target("ratio", "<=", 0.6)
    rows = []
    for label, http in (("store=false, full context", full), ("store=true, by id", stored)):
        saving = (1 - ws.seconds / http.seconds) * 100
        rows.append(
            Row(
                name,
                f"run s, WebSocket vs HTTP {label}",
                ws.seconds,
                http.seconds,
                faster,
                note=f"WebSocket {saving:.1f} % faster than HTTP {label} (target ≥ 40 %)",
            )
        )
    rows.append(
        Row(
            name,
            "upstream cache hits %, playground WebSocket vs direct SDK",
            ws.hit_rate,
            direct.hit_rate,
            Target("value", ">=", 100.0, " %"),
            note=f"HTTP hits: store=false {full.hit_rate:.0f} %, "
            f"store=true {stored.hit_rate:.0f} % (parents hydrated from the store)",
        )
    )
    for label, http in (("store=false", full), ("store=true", stored)):
        rows.append(
            Row(
                name,
                f"upstream bytes/step, WebSocket vs HTTP {label}",
                ws.bytes_per_step,
                http.bytes_per_step,
            )
        )
    return rows
