"""The scale scenario's smoke run: its rows, and with BENCH_SCALE_OUT its curve and chart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench.sizes import SMOKE
from tests.simserver import ROOT


@pytest.mark.timeout(180)
def test_the_smoke_run_steps_the_streaming_sessions_and_writes_the_curve(tmp_path: Path) -> None:
    output, out = tmp_path / "bench.json", tmp_path / "img"
    command = [sys.executable, "manage.py", "bench", "--smoke", "scale", "--json", str(output)]
    env = {**os.environ, "BENCH_SCALE_OUT": str(out)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    rows = json.loads(output.read_text())["rows"]
    assert {row["scenario"] for row in rows} == {"scale"}
    crossings = [row for row in rows if "first exceeds 50 ms" in row["metric"]]
    assert len(crossings) == 2
    for row in crossings:
        assert row["not_run"] or row["value"] in SMOKE.scale_steps, row
    curve = json.loads((out / "scale.json").read_text())
    assert curve["steps"] == list(SMOKE.scale_steps)
    measured = [c for c in curve["configurations"] if not c["not_run"]]
    assert measured
    assert measured[0]["processes"] == 1
    for configuration in measured:
        points = configuration["points"]
        assert [p["streaming"] for p in points] == list(SMOKE.scale_steps)
        for point in points:
            assert point["errors"] == 0, point
            assert 0 < point["p50_ms"] <= point["p99_ms"], point
            assert point["timed"] == point["deltas"] > 0, point
            assert point["cpu_us_per_delta"] > 0, point
    if os.environ.get("CI") == "true":  # CI has Redis: both configurations ran
        assert len(measured) == 2
    root = ET.fromstring((out / "scale.svg").read_text())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
