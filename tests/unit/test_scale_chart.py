"""The scale scenario's chart (bench/svg.py): a well-formed SVG with a line per configuration,
p50 dashed, the 50 ms rule, labels and legend; and the curve's crossing and rows."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import replace

from bench.curve import rows
from bench.points import Curve, Point
from bench.sizes import FULL
from bench.svg import as_json, chart, ladder

SVG = "{http://www.w3.org/2000/svg}"


def point(streaming: int, p50: float, p99: float, cpu: float) -> Point:
    deltas = streaming * 240
    return Point(streaming, 240, p50, p99, cpu, 80.0, deltas, deltas, 0, 9.0, "daphne 1 50 %")


ONE = Curve(1, [point(50, 3.0, 12.0, 70), point(100, 9.0, 48.0, 66), point(200, 110, 640, 63)])
TWO = Curve(2, [point(50, 2.5, 20.0, 95), point(100, 3.5, 31.0, 90), point(200, 9.0, 44.0, 88)])


def texts(root: ET.Element) -> list[str]:
    return ["".join(element.itertext()) for element in root.iter(f"{SVG}text")]


def test_the_chart_parses_and_has_a_line_per_configuration_and_percentile() -> None:
    root = ET.fromstring(chart([ONE, TWO], 30.0))
    assert root.tag == f"{SVG}svg"
    assert root.get("viewBox") == "0 0 960 712"
    lines = root.findall(f"{SVG}polyline")
    for kind in ("p99", "p50", "cpu"):
        drawn = [line for line in lines if line.get("class") == kind]
        assert [line.get("data-processes") for line in drawn] == ["1", "2"], kind
        for line in drawn:
            assert len(line.get("points", "").split()) == 3
    dashed = {line.get("class") for line in lines if line.get("stroke-dasharray")}
    assert dashed == {"p50"}
    # The 50 ms rule, across the latency plot.
    (limit,) = [line for line in root.iter(f"{SVG}line") if line.get("class") == "limit"]
    assert limit.get("y1") == limit.get("y2")
    assert float(limit.get("x2", 0)) - float(limit.get("x1", 0)) > 700


def test_the_chart_names_its_axes_legend_and_where_each_line_crosses_50_ms() -> None:
    words = texts(ET.fromstring(chart([ONE, TWO], 30.0)))
    assert any("streaming sessions" in w for w in words)  # the x axis
    assert any("Token latency" in w and "ms" in w for w in words)
    assert any("CPU per relayed delta" in w for w in words)
    assert "50 ms p99 limit" in words
    assert "one process: p99 over 50 ms from 200 streaming" in words
    assert "two processes: p99 under 50 ms up to 200" in words
    assert {"50", "100", "200"} <= set(words)  # the steps
    assert {"640", "44"} <= set(words)  # p99 labels


def test_a_configuration_not_run_and_a_missing_number_still_draw() -> None:
    gap = Curve(1, [point(4, math.nan, math.nan, math.nan), point(8, 1.0, 2.0, 300)])
    root = ET.fromstring(chart([gap, Curve(2, not_run="Redis is not answering")], 300.0))
    assert "two processes: not run (no Redis)" in texts(root)
    (p99,) = [line for line in root.iter(f"{SVG}polyline") if line.get("class") == "p99"]
    assert len(p99.get("points", "").split()) == 1


def test_log_ticks_run_1_2_5_around_the_values() -> None:
    assert ladder(3.0, 640.0) == [2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]
    assert ladder(50.0, 50.0) == [50.0]


def test_rows_give_where_each_configuration_crosses_and_every_point() -> None:
    sizes = replace(FULL, scale_steps=(50, 100, 200))
    found = rows([ONE, TWO], sizes)
    one, two = found[0], found[1]
    assert (one.value, one.baseline, one.target) == (200, FULL.streaming, None)
    assert "crosses at 200" in one.note
    assert "only the streaming sessions are open" in one.note
    assert (two.value, two.baseline) == (200, 200)
    assert "not within 200" in two.note
    assert len(found) == 2 + 6
    assert found[2].value == 12.0
    assert found[2].baseline == 3.0
    curve = as_json([ONE, Curve(2, [point(50, math.nan, math.nan, math.nan)])], sizes, 50.0)
    assert curve["configurations"][0]["crosses_at"] == 200
    assert curve["configurations"][1]["points"][0]["p99_ms"] is None
