"""Percentiles, and per-delta latency from the simulator's send times to a client's receipts."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# Per item: (arrival time, characters of the item's text received so far), in arrival order.
Receipts = dict[str, list[tuple[float, int]]]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between the closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


@dataclass(frozen=True)
class Sent:
    """One delta as the simulator sent it (a ``sends`` entry of its connection log)."""

    request: int
    sequence: int
    at: float
    item: str
    delta: str

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> Sent:
        request, sequence, at, item, delta = raw
        return cls(int(request), int(sequence), float(at), str(item), str(delta))


def sends_of(log: dict[str, Any], request: int | None = None) -> list[Sent]:
    """The deltas a connection log recorded (of one request), in the order they were sent."""
    sends = [Sent.parse(raw) for raw in log.get("sends", [])]
    return [s for s in sends if request is None or s.request == request]


@dataclass
class Delivery:
    latencies_ms: list[float]
    missing: int  # deltas never (fully) received
    wrong_items: int  # items whose received text differs from the text sent

    @property
    def errors(self) -> int:
        return self.missing + self.wrong_items


def delivery(sends: Iterable[Sent], receipts: Receipts, texts: dict[str, str]) -> Delivery:
    """For each sent delta, when the client had the item's text up to and including it."""
    counts = {item: [count for _, count in got] for item, got in receipts.items()}
    totals: dict[str, int] = {}
    expected: dict[str, list[str]] = {}
    latencies: list[float] = []
    missing = 0
    for sent in sends:
        expected.setdefault(sent.item, []).append(sent.delta)
        needed = totals[sent.item] = totals.get(sent.item, 0) + len(sent.delta)
        got = counts.get(sent.item, [])
        index = bisect.bisect_left(got, needed)
        if index == len(got):
            missing += 1
        else:
            latencies.append((receipts[sent.item][index][0] - sent.at) * 1000)
    wrong = sum(1 for item, parts in expected.items() if texts.get(item) != "".join(parts))
    return Delivery(latencies, missing, wrong)
