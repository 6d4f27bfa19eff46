"""The scenarios, in order, and running them: each alone or all, into rows and a report."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.curve import scale
from bench.fork import fork
from bench.idle import idle_tabs
from bench.overhead import overhead_realistic, overhead_zero, ws_vs_http
from bench.race import race
from bench.restart import restart
from bench.results import Row, machine, not_run, summary
from bench.resume import resume
from bench.scale import concurrency, concurrency_two_processes
from bench.sizes import Sizes
from bench.stack import shared_stacks
from bench.storm import connect_storm, connect_storm_busy
from bench.streams import token_burst, token_latency, token_latency_two_processes
from bench.ttft import ttft

log = logging.getLogger(__name__)

ScenarioRun = Callable[[Sizes], Awaitable[list[Row]]]


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    run: ScenarioRun


def scenarios() -> dict[str, Scenario]:
    listed = [
        Scenario("overhead-zero", "20-step tool run, playground vs SDK client, profile zero",
                 overhead_zero),
        Scenario("overhead-realistic", "the same at profile realistic", overhead_realistic),
        Scenario("token-latency", "per-token latency added at 100 tokens/s", token_latency),
        Scenario("token-latency-2p", "the same, the tab on the process not running the session",
                 token_latency_two_processes),
        Scenario("token-burst", "one response at the simulator's full speed", token_burst),
        Scenario("ttft", "time to first token through the page vs the SDK client", ttft),
        Scenario("ws-vs-http", "the run over WebSocket vs HTTP (store off and on)", ws_vs_http),
        Scenario("race", "the compare page's race: the three transports at once", race),
        Scenario("fork", "regenerate after the run vs a plain follow-up and a full create", fork),
        Scenario("concurrency", "1,000 paired sessions, 200 streaming at 30 tokens/s",
                 concurrency),
        Scenario("concurrency-2p", "the same on two processes sharing Redis",
                 concurrency_two_processes),
        Scenario("idle-tabs", "200 idle paired sessions: the server's CPU while nothing happens",
                 idle_tabs),
        Scenario("resume", "reconnects at random points of long replies, one and two processes",
                 resume),
        Scenario("connect-storm", "1,000 simultaneous browser sockets vs a raw server",
                 connect_storm),
        Scenario("connect-storm-busy", "the same while another process spins a core",
                 connect_storm_busy),
        Scenario("scale", "streaming sessions stepped 50 to 800, one process and two", scale),
        Scenario("restart", "a rolling restart of two processes while 20 sessions stream",
                 restart),
    ]  # fmt: skip
    return {scenario.name: scenario for scenario in listed}


async def run_scenario(scenario: Scenario, sizes: Sizes) -> tuple[list[Row], str]:
    """The scenario's rows; if it could not run, one not-run row saying why, and the error."""
    try:
        rows = await scenario.run(sizes)
    except Exception as exc:
        log.exception("Scenario %s could not run", scenario.name)
        reason = f"failed to run: {type(exc).__name__}: {exc}"
        return [not_run(scenario.name, "(scenario)", reason[:300])], reason
    if sizes.smoke:
        for row in rows:
            row.enforced = False
    return rows, ""


@dataclass
class Report:
    rows: list[Row]
    errors: dict[str, str]
    seconds: float
    smoke: bool
    # The 1-minute load average before and after: other work on the machine skews the numbers.
    load: tuple[float, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "machine": machine(),
            "load_average": {"before": self.load[0], "after": self.load[1]},
            "smoke": self.smoke,
            "targets_enforced": not self.smoke,
            "runtime_s": round(self.seconds, 1),
            "summary": summary(self.rows),
            "errors": self.errors,
            "rows": [row.as_dict() for row in self.rows],
        }


async def run_suite(
    names: list[str], sizes: Sizes, progress: Callable[[str], None] = print
) -> Report:
    started, load = time.monotonic(), os.getloadavg()[0]
    rows: list[Row] = []
    errors: dict[str, str] = {}
    # The smoke run's scenarios share their processes where they ask for the same ones; not with
    # BENCH_PROFILE, whose files are named after the scenario that started the playground.
    async with shared_stacks(sizes.smoke and not os.environ.get("BENCH_PROFILE")):
        for name in names:
            scenario = scenarios()[name]
            progress(f"[{time.monotonic() - started:6.1f} s] {name}: {scenario.summary}")
            found, error = await run_scenario(scenario, sizes)
            rows += found
            if error:
                errors[name] = error
    seconds = time.monotonic() - started
    return Report(rows, errors, seconds, sizes.smoke, (load, os.getloadavg()[0]))
