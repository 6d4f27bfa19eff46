"""The scale scenario's chart as a hand-written SVG (no plotting library): token latency (p99
solid, p50 dashed, log scale) against the streaming sessions (log2 scale), one line per
configuration, the 50 ms limit as a rule; below, daphne's CPU per relayed delta. And the files
``BENCH_SCALE_OUT`` asks for: the chart and the curve as JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape, quoteattr

from bench.points import Curve, Point
from bench.results import machine

if TYPE_CHECKING:
    from bench.sizes import Sizes

WIDTH, HEIGHT = 960, 712
LEFT, RIGHT = 88, 900  # the plots' x extent
TOP, BOTTOM = 166, 468  # the latency plot
CPU_TOP, CPU_BOTTOM = 540, 644  # the CPU plot
COLOURS = ("#2563eb", "#ea580c", "#059669", "#9333ea")
INK, MUTED, GRID, LIMIT = "#1f2937", "#6b7280", "#e5e7eb", "#dc2626"
FONT = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"
P50_DASHES, LIMIT_DASHES = "7 5", "6 4"
Scale = Callable[[float], float]
Attrs = dict[str, str | float]
# A point's label: centred, bold, on a white outline that keeps it readable across a line.
HALO: Attrs = {
    "text_anchor": "middle",
    "font_weight": 600,
    "stroke": "#fff",
    "stroke_width": 3,
    "stroke_linejoin": "round",
    "paint_order": "stroke",
}


def attributes(attrs: dict[str, str | float]) -> str:
    """``font_size=12, class_="p99"`` as ``font-size="12" class="p99"``."""
    return "".join(
        f" {key.rstrip('_').replace('_', '-')}={quoteattr(str(value))}"
        for key, value in attrs.items()
    )


def text(x: float, y: float, content: str, **attrs: str | float) -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}"{attributes(attrs)}>{escape(content)}</text>'


def line(x1: float, y1: float, x2: float, y2: float, **attrs: str | float) -> str:
    ends = f'x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"'
    return f"<line {ends}{attributes(attrs)}/>"


def polyline(points: Sequence[tuple[float, float]], **attrs: str | float) -> str:
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return f'<polyline points="{coords}" fill="none"{attributes(attrs)}/>'


def ladder(low: float, high: float) -> list[float]:
    """The 1-2-5 values from the largest at or below ``low`` to the smallest at or above
    ``high`` (both > 0)."""
    values = [
        mantissa * 10.0**exponent
        for exponent in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
        for mantissa in (1, 2, 5)
    ]
    below = [v for v in values if v <= low * 1.0001]
    above = [v for v in values if v >= high / 1.0001]
    return [v for v in values if below[-1] <= v <= above[0]]


def label(value: float) -> str:
    return f"{value:,.0f}" if value >= 9.95 else f"{value:.2g}" if value < 1 else f"{value:.1f}"


def finite(value: float) -> bool:
    return math.isfinite(value) and value > 0


def x_scale(steps: Sequence[int]) -> Scale:
    low, high = math.log2(min(steps)), math.log2(max(steps))
    pad = max((high - low) * 0.06, 0.5)
    low, high = low - pad, high + pad
    return lambda value: LEFT + (math.log2(value) - low) / (high - low) * (RIGHT - LEFT)


def heading(y: float, words: str) -> str:
    return text(LEFT, y, words, font_size=14, font_weight=600, fill=INK, class_="panel-title")


def series(
    curves: Sequence[Curve],
    x: Scale,
    y: Scale,
    value: Callable[[Point], float],
    kind: str,
    errors: bool = False,
) -> list[str]:
    """Each curve's ``value`` as a solid line with dots, each labelled above the dot where it
    is the highest of the curves at that step, below it elsewhere; with ``errors``, a step's
    errors (failed runs, lost text, closed sockets) follow its label."""
    out: list[str] = []
    for index, curve in enumerate(curves):
        colour = COLOURS[index % len(COLOURS)]
        points = [p for p in curve.points if finite(value(p))]
        coords = [(x(p.streaming), y(value(p))) for p in points]
        data: Attrs = {"class_": kind, "data_processes": curve.processes}
        out.append(polyline(coords, stroke=colour, stroke_width=2.75, **data))
        for (cx, cy), point in zip(coords, points, strict=True):
            same = [
                p
                for c in curves
                if c is not curve
                for p in c.points
                if p.streaming == point.streaming
            ]
            highest = all(value(point) >= value(p) for p in same if finite(value(p)))
            dot = f'cx="{cx:.1f}" cy="{cy:.1f}" r="4.5" fill="{colour}"'
            out.append(f'<circle {dot} stroke="#fff" stroke-width="1.5"/>')
            words = label(value(point))
            if errors and point.errors:
                words += f" ({point.errors:,} errors)"
            dy = -11 if highest else 20
            out.append(text(cx, cy + dy, words, fill=colour, **HALO))
    return out


def log_axis(values: Sequence[float], top: float, bottom: float) -> tuple[list[float], Scale]:
    """1-2-5 ticks around ``values`` (the decades only if they span several) and the scale
    that puts them between ``bottom`` and ``top``."""
    ticks = ladder(min(values), max(values))
    if len(ticks) > 13:
        ticks = [t for t in ticks if math.log10(t) == round(math.log10(t))]
    low, high = math.log10(ticks[0]), math.log10(ticks[-1])

    def y(value: float) -> float:
        share = (math.log10(max(value, ticks[0])) - low) / (high - low)
        return bottom - share * (bottom - top)

    return ticks, y


def grid(ticks: Sequence[float], y: Scale) -> list[str]:
    out: list[str] = []
    for tick in ticks:
        out.append(line(LEFT, y(tick), RIGHT, y(tick), stroke=GRID))
        out.append(text(LEFT - 10, y(tick) + 4, f"{tick:,g}", text_anchor="end", fill=MUTED))
    return out


def latency_panel(curves: Sequence[Curve], x: Scale, limit: float) -> list[str]:
    values = [v for c in curves for p in c.points for v in (p.p50_ms, p.p99_ms) if finite(v)]
    ticks, y = log_axis([*values, limit], TOP, BOTTOM)
    out = [heading(TOP - 18, "Token latency, simulator send to browser socket (ms, log scale)")]
    out += grid(ticks, y)
    rule: Attrs = {"stroke": LIMIT, "stroke_width": 1.5, "stroke_dasharray": LIMIT_DASHES}
    out.append(line(LEFT, y(limit), RIGHT, y(limit), class_="limit", **rule))
    words = f"{limit:g} ms p99 limit"
    # At the left, where the load is light: the lines are mostly below it there.
    out.append(text(LEFT + 6, y(limit) - 7, words, fill=LIMIT, **{**HALO, "text_anchor": "start"}))
    for index, curve in enumerate(curves):
        coords = [(x(p.streaming), y(p.p50_ms)) for p in curve.points if finite(p.p50_ms)]
        dashes: Attrs = {"stroke_dasharray": P50_DASHES, "data_processes": curve.processes}
        colour = COLOURS[index % len(COLOURS)]
        out.append(polyline(coords, stroke=colour, stroke_width=1.75, class_="p50", **dashes))
    out += series(curves, x, y, lambda point: point.p99_ms, "p99", errors=True)
    return [*out, line(LEFT, BOTTOM, RIGHT, BOTTOM, stroke=MUTED)]


def cpu_panel(curves: Sequence[Curve], x: Scale) -> list[str]:
    values = [p.cpu_us_per_delta for c in curves for p in c.points if finite(p.cpu_us_per_delta)]
    # Room below the lowest point for its label, above the highest for its own.
    ticks, y = log_axis(
        [min(values) / 1.8, max(values) * 1.5] if values else [1.0], CPU_TOP, CPU_BOTTOM
    )
    title = "Server CPU per relayed delta (µs, log scale; two processes: both daphnes summed)"
    out = [heading(CPU_TOP - 18, title), *grid(ticks, y)]
    out += series(curves, x, y, lambda point: point.cpu_us_per_delta, "cpu")
    return [*out, line(LEFT, CPU_BOTTOM, RIGHT, CPU_BOTTOM, stroke=MUTED)]


def legend(curves: Sequence[Curve], limit: float) -> list[str]:
    out: list[str] = []
    at: float = LEFT
    for index, curve in enumerate(curves):
        crossed = curve.crossing(limit)
        if curve.not_run:
            where = "not run (no Redis)"
        elif crossed:
            where = f"p99 over {limit:g} ms from {crossed.streaming} streaming"
        else:
            where = f"p99 under {limit:g} ms up to {max(p.streaming for p in curve.points)}"
        words = f"{curve.label}: {where}"
        colour = COLOURS[index % len(COLOURS)]
        out.append(line(at, 92, at + 28, 92, stroke=colour, stroke_width=3))
        out.append(text(at + 36, 96.5, words, fill=INK, font_size=14, class_="legend"))
        at += 36 + len(words) * 7.6 + 36
    at = LEFT
    samples = (
        ("p99", "", INK),
        ("p50", P50_DASHES, INK),
        (f"{limit:g} ms limit", LIMIT_DASHES, LIMIT),
    )
    for name, dashes, colour in samples:
        style = {"stroke_dasharray": dashes} if dashes else {}
        out.append(line(at, 118, at + 28, 118, stroke=colour, stroke_width=2, **style))
        out.append(text(at + 36, 122, name, fill=MUTED, font_size=13, class_="legend"))
        at += 36 + len(name) * 7.0 + 28
    return out


def chart(curves: Sequence[Curve], rate: float, limit: float = 50.0) -> str:
    """The SVG document (960 x 712) of the measured ``curves``."""
    measured = [curve for curve in curves if curve.points]
    steps = sorted({p.streaming for c in measured for p in c.points}) or [1]
    x = x_scale(steps)
    subtitle = (
        f"Every open session streams one reply at {rate:g} tokens/s; no idle sessions are open. "
        "Two processes share Redis, tabs spread evenly."
    )
    title = "Token latency and server CPU as streaming sessions double"
    parts = [
        text(LEFT, 36, title, font_size=21, font_weight=700, fill=INK, class_="title"),
        text(LEFT, 60, subtitle, font_size=13, fill=MUTED),
        *legend(curves, limit),
    ]
    if measured:
        parts += latency_panel(measured, x, limit) + cpu_panel(measured, x)
    for step in steps:
        for top, bottom in ((TOP, BOTTOM), (CPU_TOP, CPU_BOTTOM)):
            parts.append(line(x(step), top, x(step), bottom, stroke=GRID, stroke_dasharray="2 4"))
        parts.append(line(x(step), CPU_BOTTOM, x(step), CPU_BOTTOM + 5, stroke=MUTED))
        words = f"{step:,}"
        parts.append(text(x(step), CPU_BOTTOM + 23, words, text_anchor="middle", font_size=13))
    words = "streaming sessions (log₂ scale)"
    at = (LEFT + RIGHT) / 2
    parts.append(
        text(at, CPU_BOTTOM + 52, words, text_anchor="middle", font_size=14, class_="axis-title")
    )
    body = "\n  ".join(parts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="{FONT}" font-size="12" fill="{INK}">\n'
        f'  <rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>\n  {body}\n</svg>\n'
    )


def as_json(curves: Sequence[Curve], sizes: Sizes, limit: float) -> dict[str, Any]:
    """The whole curve, with the machine it was measured on."""

    return {
        "scenario": "scale",
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "smoke": sizes.smoke,
        "tokens_per_s": sizes.stream_rate,
        "limit_ms": limit,
        "steps": list(sizes.scale_steps),
        "configurations": [
            {
                "processes": curve.processes,
                "label": curve.label,
                "not_run": curve.not_run or None,
                "crosses_at": (crossed.streaming if (crossed := curve.crossing(limit)) else None),
                "points": [rounded(asdict(point)) for point in curve.points],
            }
            for curve in curves
        ],
    }


def rounded(fields: dict[str, Any]) -> dict[str, Any]:
    """Floats to 3 decimals, and None for a number that could not be measured (NaN)."""
    return {
        key: (round(value, 3) if math.isfinite(value) else None)
        if isinstance(value, float)
        else value
        for key, value in fields.items()
    }


def write(directory: Path, curves: Sequence[Curve], sizes: Sizes, limit: float) -> None:
    """``directory/scale.json`` (the curve) and ``directory/scale.svg`` (its chart)."""
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(as_json(curves, sizes, limit), indent=2, allow_nan=False)
    (directory / "scale.json").write_text(text + "\n")
    (directory / "scale.svg").write_text(chart(curves, sizes.stream_rate, limit))
