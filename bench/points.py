"""The scaling curve's data: one point per step, one curve per number of processes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

LIMIT_MS = 50.0  # the p99 the concurrency scenario's target allows
LABELS = {1: "one process", 2: "two processes"}


@dataclass
class Point:
    """One step: ``streaming`` sessions open, each streaming a reply of ``tokens`` tokens."""

    streaming: int
    tokens: int
    p50_ms: float
    p99_ms: float
    cpu_us_per_delta: float  # daphne's CPU (all processes) in the stream phase / deltas relayed
    rss_kib_per_session: float  # daphne's RSS (all processes) over the warm one's, per session
    deltas: int  # relayed in the stream phase
    timed: int  # of which the latency was measured (the sessions whose send log is kept)
    errors: int  # sessions whose run failed, whose text was lost or wrong, or socket closed
    seconds: float  # the stream phase, from the first send to the last run's end
    cpu: str = ""  # each process's share of one core in the stream phase
    # The rest of the machine's, meanwhile: Redis, and other work (which skews the numbers).
    others_pct: float = math.nan
    failures: str = ""  # the failed runs by why


@dataclass
class Curve:
    processes: int
    points: list[Point] = field(default_factory=list)
    not_run: str = ""  # why it was not measured (no Redis)

    @property
    def label(self) -> str:
        return LABELS.get(self.processes, f"{self.processes} processes")

    def crossing(self, limit: float = LIMIT_MS) -> Point | None:
        """The first step whose p99 exceeds ``limit``."""
        return next((point for point in self.points if point.p99_ms > limit), None)
