"""Rows of the benchmark table: value, baseline, ratio, target and the outcome; table and JSON."""

from __future__ import annotations

import math
import operator
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

COMPARE: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge}
SYMBOL = {"<=": "≤", ">=": "≥"}


@dataclass(frozen=True)
class Target:
    """A limit on the ratio, on the value itself, or on the value minus the baseline."""

    on: str  # "ratio", "value" or "added"
    op: str  # "<=" or ">="
    limit: float
    unit: str = ""

    def holds(self, value: float, baseline: float, ratio: float | None) -> bool | None:
        subject = {"ratio": ratio, "value": value, "added": value - baseline}[self.on]
        if subject is None or math.isnan(subject):
            return None
        return COMPARE[self.op](subject, self.limit)

    def __str__(self) -> str:
        limit = f"{self.limit:g}"
        if self.on == "ratio":
            return f"{SYMBOL[self.op]} {limit}x"
        if self.on == "added":
            return f"{SYMBOL[self.op]} baseline + {limit}{self.unit}"
        return f"{SYMBOL[self.op]} {limit}{self.unit}"


@dataclass
class Row:
    scenario: str
    metric: str
    value: float | None = None
    baseline: float | None = None
    target: Target | None = None
    not_run: str = ""  # why there is no measurement
    note: str = ""
    enforced: bool = True

    @property
    def ratio(self) -> float | None:
        """value / baseline; two zeros (no errors on either side) count as equal (1.0)."""
        if self.value is None or self.baseline is None:
            return None
        if self.baseline == 0:
            return 1.0 if self.value == 0 else None
        return self.value / self.baseline

    @property
    def passed(self) -> bool | None:
        if self.target is None or self.value is None or self.baseline is None:
            return None
        return self.target.holds(self.value, self.baseline, self.ratio)

    @property
    def result(self) -> str:
        if self.not_run:
            return "not run"
        if self.target is None:
            return "info"
        outcome = {True: "pass", False: "FAIL", None: "n/a"}[self.passed]
        return outcome if self.enforced else f"{outcome.lower()} (not enforced)"

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "metric": self.metric,
            "value": _finite(self.value),
            "baseline": _finite(self.baseline),
            "ratio": _finite(self.ratio),
            "target": str(self.target) if self.target else None,
            "passed": self.passed,
            "enforced": self.enforced,
            "result": self.result,
            "not_run": self.not_run or None,
            "note": self.note or None,
        }


def not_run(scenario: str, metric: str, reason: str, target: Target | None = None) -> Row:
    return Row(scenario, metric, target=target, not_run=reason)


def _finite(number: float | None) -> float | None:
    if number is None or not math.isfinite(number):
        return None
    return round(number, 4)


def number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)

    HEADINGS = ("scenario", "metric", "value", "baseline", "ratio", "target", "result")

    def cells(self) -> list[list[str]]:
        out = []
        for row in self.rows:
            ratio = f"{number(row.ratio)}x" if row.ratio is not None else "—"
            result = row.result if not row.not_run else f"not run: {row.not_run}"
            target = str(row.target) if row.target else "—"
            values = [number(row.value), number(row.baseline), ratio]
            out.append([row.scenario, row.metric, *values, target, result])
        return out

    def text(self) -> str:
        """A plain-text table for the terminal, then the rows' notes."""
        cells = [list(self.HEADINGS), *self.cells()]
        widths = [max(len(line[i]) for line in cells) for i in range(6)]
        lines = []
        for index, line in enumerate(cells):
            left = [cell.ljust(width) for cell, width in zip(line[:6], widths, strict=True)]
            lines.append("  ".join([*left, line[6]]).rstrip())
            if index == 0:
                lines.append("  ".join("-" * width for width in widths) + "  ------")
        notes = [f"- {row.scenario} / {row.metric}: {row.note}" for row in self.rows if row.note]
        return "\n".join(lines + (["", "Notes:", *notes] if notes else []))

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.HEADINGS) + " |", "|" + "---|" * len(self.HEADINGS)]
        lines += ["| " + " | ".join(_md(cell) for cell in line) + " |" for line in self.cells()]
        return "\n".join(lines)


def _md(cell: str) -> str:
    return cell.replace("|", "\\|")


def summary(rows: Sequence[Row]) -> dict[str, int]:
    counts = {"pass": 0, "fail": 0, "info": 0, "not_run": 0, "not_enforced": 0}
    for row in rows:
        if row.not_run:
            counts["not_run"] += 1
        elif row.target is None:
            counts["info"] += 1
        elif not row.enforced:
            counts["not_enforced"] += 1
        elif row.passed:
            counts["pass"] += 1
        else:
            counts["fail"] += 1
    return counts


def results_page(table: str) -> str:
    """docs/benchmark-results.md: the table of one ``make bench`` run, with when and where."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}"
    return (
        "# Benchmark results\n\n"
        f"Written by `make bench` on {when}\n({machine}). What each scenario measures, its "
        "baseline and its target:\n[Benchmarks](benchmarks.md); earlier runs and their notes: "
        "[Benchmark history](benchmark-history.md).\n\n"
        f"{table}\n"
    )


def machine() -> dict[str, Any]:
    """Where the numbers came from: CPU model and cores, Python, OS."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }
