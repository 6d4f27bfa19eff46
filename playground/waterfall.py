"""The geometry of a run's waterfall (templates/playground/session.html#waterfall), on one scale
for every run of a session: the longest run's ms per pixel, so that two runs compare by eye.

A page draws its finished runs at once (:func:`session_geometries`), so it knows the longest.
A run that finishes live reaches the page alone (``TurnEnded`` carries its own steps only), and
may be the new longest. Two ways out: a scale that never changes (a fixed ms per pixel, or the
first run's), which either squeezes a 50 ms run into a pixel or lets a later one-minute run run
off the chart; or the longest run's, with the earlier charts drawn again out of band when a
longer run arrives. We do the latter: every chart has an id (its run's position), and
:class:`SessionRuns` remembers, per session and in this process, the runs it drew for a page
(each page's snapshot is rendered in the process of its socket, so the process that renders a
run's end for a page has drawn that page's earlier runs). A run no longer than the longest is
drawn on the longest's scale and nothing else changes; a longer one brings its page the earlier
charts again, on its scale, in the same frame. A session this process does not remember (its
memory is bounded) draws the new run on its own scale, as before.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agents.models import Step
from playground import costs

WIDTH = 600  # px of the chart, the step labels included
LABELS = 160  # px of the step labels, left of the time axis
ROW = 18
AXIS = 22  # px below the rows: the time axis and its labels
MAX_TICKS = 6
SESSIONS_KEPT = 256  # sessions whose runs a process remembers (each page's snapshot refills it)


def run_ms(steps: Iterable[Step]) -> float:
    """How long a run took: from its start to the end of its last step's tools."""
    return max((s.started_ms + s.duration_ms + s.tool_ms for s in steps), default=0.0)


def ms_per_px(span_ms: float) -> float:
    """The scale that fits ``span_ms`` in the chart's time axis."""
    return (span_ms or 1.0) / (WIDTH - LABELS)


def geometry(
    steps: Sequence[Step], span_ms: float | None = None, oob: bool = False
) -> dict[str, Any]:
    """A run's waterfall: one row per step, model time then tool time, on a time axis of
    ``span_ms`` (the session's longest run; by default the run's own length)."""
    ordered = sorted(steps, key=lambda s: s.started_ms)
    end = run_ms(ordered) or 1.0
    span = max(span_ms or 0.0, end)
    scale = 1 / ms_per_px(span)  # px per ms
    rows = []
    for number, step in enumerate(ordered, start=1):
        x = LABELS + step.started_ms * scale
        model = max(step.duration_ms * scale, 1.0)
        rows.append(
            {
                "y": (number - 1) * ROW,
                "x": round(x, 1),
                "model": round(model, 1),
                "tool_x": round(x + model, 1),
                "tool": round(step.tool_ms * scale, 1),
                "label": f"{number} {step.mode} {step.duration_ms:.0f} ms",
                "step": step,
            }
        )
    axis_y = len(rows) * ROW + 4
    ticks = [{"x": round(LABELS + at * scale, 1), "label": duration(at)} for at in tick_times(span)]
    return {
        "run": ordered[0].turn_position if ordered else None,
        "oob": oob,  # drawn again, in place of the page's chart of the same run
        "rows": rows,
        "width": WIDTH,
        "height": axis_y + AXIS,
        "total_ms": end,
        "span_ms": span,
        "ms_per_px": round(ms_per_px(span), 4),
        "axis_y": axis_y,
        "ticks": ticks,
        "cost": costs.usd(costs.run_cost(ordered)),
    }


def tick_times(end_ms: float) -> list[float]:
    """Round times from 0 to ``end_ms``: a step of 1, 2 or 5 times a power of ten, at most
    ``MAX_TICKS`` of them."""
    step = 1.0
    while end_ms / step > MAX_TICKS - 1:
        for factor in (2.0, 2.5, 2.0):  # 1 → 2 → 5 → 10: each a round number
            step *= factor
            if end_ms / step <= MAX_TICKS - 1:
                break
    count = int(end_ms // step)
    return [index * step for index in range(count + 1)]


def duration(ms: float) -> str:
    return f"{ms / 1000:g} s" if ms >= 1000 else f"{ms:g} ms"


Runs = Mapping[int, Sequence[Step]]  # a session's finished runs: steps by the run's position


class SessionRuns:
    """The finished runs this process drew, per session (the most recently drawn sessions)."""

    def __init__(self, kept: int = SESSIONS_KEPT) -> None:
        self.kept = kept
        self._sessions: OrderedDict[str, dict[int, tuple[Step, ...]]] = OrderedDict()

    def clear(self) -> None:
        self._sessions.clear()

    def drawn(self, session_id: str, runs: Runs) -> float:
        """Remember the runs a page shows; the longest run's length (the scale's span)."""
        known = self._session(session_id)
        known.update({run: tuple(steps) for run, steps in runs.items() if steps})
        return max((run_ms(steps) for steps in known.values()), default=0.0)

    def finished(self, steps: Sequence[Step]) -> list[dict[str, Any]]:
        """The charts a page needs when a run ends: the run's, on the session's scale, then, if
        it is the new longest, every earlier run's again (out of band) on its scale."""
        session_id = steps[0].session_id if steps else None
        run = steps[0].turn_position if steps else None
        if session_id is None or run is None:  # not from a session we can tell: its own scale
            return [geometry(steps)] if steps else []
        known = self._session(str(session_id))
        others = {position: found for position, found in known.items() if position != run}
        known[run] = tuple(steps)
        longest_before = max((run_ms(found) for found in others.values()), default=0.0)
        length = run_ms(steps)
        span = max(longest_before, length)
        charts = [geometry(steps, span)]
        if length > longest_before:  # a new longest: the earlier charts (on the page) rescale
            earlier = sorted(position for position in others if position < run)
            charts += [geometry(others[position], span, oob=True) for position in earlier]
        return charts

    def _session(self, session_id: str) -> dict[int, tuple[Step, ...]]:
        known = self._sessions.setdefault(session_id, {})
        self._sessions.move_to_end(session_id)
        while len(self._sessions) > self.kept:
            self._sessions.popitem(last=False)
        return known


session_runs = SessionRuns()


def session_geometries(session_id: str | None, runs: Runs) -> dict[int, dict[str, Any]]:
    """Every finished run's chart for a page, on the scale of the longest, by run position."""
    if session_id is not None:
        span = session_runs.drawn(session_id, runs)
    else:
        span = max((run_ms(steps) for steps in runs.values()), default=0.0)
    return {run: geometry(steps, span) for run, steps in runs.items() if steps}
