"""How big each scenario is: the full suite's sizes, and the smoke run's tiny ones."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    research_steps: int = 20  # tool calls of the research run (scenarios 1, 2, 5)
    zero_runs: int = 5  # timed runs of each side at profile zero (the median is reported)
    realistic_runs: int = 2  # ... at profile realistic (each takes ~12 s)
    realistic_time_scale: float = 1.0  # the simulator's --time-scale at profile realistic
    latency_tokens: int = 500  # tokens of the token-latency stream
    latency_rate: float = 100.0  # its tokens per second
    burst_tokens: int = 20_000  # tokens of the token-burst stream
    sessions: int = 1_000  # paired sessions open at once (concurrency)
    streaming: int = 200  # of which streaming
    stream_tokens: int = 240  # tokens each streams
    stream_rate: float = 30.0  # tokens per second each
    storm: int = 1_000  # simultaneous browser sockets (connect-storm)
    ttft_tries: int = 25  # timed first tokens of each side, alternating (ttft)
    idle_sessions: int = 200  # paired sessions left idle (idle-tabs)
    idle_seconds: float = 20.0  # how long they idle while the server's CPU is read
    resume_reconnects: int = 1_000  # reconnects at random points (resume), per variant
    resume_tokens: int = 3_000  # tokens of each reply they land in
    resume_rate: float = 1_000.0  # its tokens per second
    resume_turns: int = 4  # replies per session (then a new one: the transcript stays short)
    restart_sessions: int = 20  # tabs streaming through a rolling restart (restart)
    restart_tokens: int = 400  # tokens of each of their replies (seconds, at profile realistic)
    settle: float = 1.0  # seconds a crowd idles before its server's memory is read
    scale_steps: tuple[int, ...] = (50, 100, 200, 400, 800)  # streaming sessions per step (scale)
    # Tokens a step of scale streams in all, at most: each session streams stream_tokens, or
    # this / its sessions if fewer (shorter replies make a step's p99 lower: keep them equal).
    scale_step_tokens: int = 192_000
    smoke: bool = False  # tiny sizes: targets are reported but not enforced


FULL = Sizes()
SMOKE = Sizes(
    research_steps=3,
    zero_runs=1,
    realistic_runs=1,
    realistic_time_scale=0.05,
    latency_tokens=20,
    # The token-latency scenarios then ask for the simulator the resume scenario runs on (same
    # arguments): the smoke run starts it once for both (bench.stack.shared_stacks).
    latency_rate=FULL.resume_rate,
    burst_tokens=400,
    sessions=12,
    streaming=4,
    stream_tokens=12,
    # Ten times the full rate: the same turns in a tenth of the time. Not resume_rate: concurrency
    # counts every connection and delta of its simulator (Stack.wait_open, streamed_sends), so
    # it must not share one with another scenario.
    stream_rate=300.0,
    storm=20,
    ttft_tries=3,
    idle_sessions=8,
    idle_seconds=2.0,
    resume_reconnects=8,
    restart_sessions=4,
    restart_tokens=60,
    resume_tokens=400,
    resume_turns=2,
    settle=0.2,
    scale_steps=(4, 8),
    smoke=True,
)
