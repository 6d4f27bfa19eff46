"""The benchmark suite: its smoke run end to end, the simulator's send log, and its arithmetic."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from openai import OpenAI

from bench.results import Row, Table, Target
from bench.stack import common_args
from bench.stats import Sent, delivery, percentile, sends_of
from bench.suite import scenarios
from tests.simserver import ROOT, SimServer


@pytest.mark.timeout(300)
def test_the_smoke_run_measures_every_scenario_and_prints_the_table(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    command = [sys.executable, "manage.py", "bench", "--smoke", "--json", str(output)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=290)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    report = json.loads(output.read_text())
    assert report["smoke"] is True
    assert report["targets_enforced"] is False
    assert report["machine"]["cores"] >= 1
    rows = report["rows"]
    assert {row["scenario"] for row in rows} == set(scenarios())
    for row in rows:
        if row["not_run"]:
            assert row["value"] is None, row
            assert row["result"] == "not run", row
            continue
        assert isinstance(row["value"], int | float), row
        assert isinstance(row["baseline"], int | float), row
        # A ratio is only missing where the baseline is zero and the value is not.
        assert isinstance(row["ratio"], int | float) or row["baseline"] == 0, row
        assert row["enforced"] is False
        assert row["result"] == "info" or row["result"].endswith("(not enforced)"), row
    # Only the two-process rows may be missing, and only where Redis is (CI has it).
    for row in rows:
        if row["not_run"]:
            assert "Redis is not answering" in row["not_run"], row
            assert os.environ.get("CI") != "true", row
    # Resume: replayed partials were timed, and no reconnect skipped or repeated text.
    resume = [row for row in rows if row["scenario"] == "resume" and not row["not_run"]]
    assert len(resume) in (4, 8)
    for row in resume:
        if "gaps" in row["metric"] or "duplicates" in row["metric"]:
            assert row["value"] == row["baseline"] == 0, row
        else:
            assert 0 < row["value"] < 10_000, row
    # Server CPU per relayed delta (one process, and two where Redis is): measured, not zero.
    per_delta = [row for row in rows if "CPU µs per relayed delta" in row["metric"]]
    assert {row["scenario"] for row in per_delta} == {"concurrency", "concurrency-2p"}
    for row in per_delta:
        assert row["not_run"] or 0 < row["value"] < 1_000_000, row
    # Time to first token: both sides timed, the page's via the simulator's first send.
    (first_token,) = [row for row in rows if row["scenario"] == "ttft"]
    assert 0 < first_token["baseline"] <= first_token["value"] < 10_000, first_token
    assert " ms in the simulator + " in first_token["note"], first_token
    # Idle tabs: a share of one core over the idle window, on either side.
    (idle,) = [row for row in rows if row["scenario"] == "idle-tabs"]
    cores = 100.0 * report["machine"]["cores"]
    assert 0 <= idle["value"] <= cores, idle
    assert 0 <= idle["baseline"] <= cores, idle
    assert "errors: 0 " in idle["note"], idle
    for heading in ("scenario", "metric", "value", "baseline", "ratio", "target", "result"):
        assert heading in done.stdout
    for row in rows:
        assert row["metric"] in done.stdout


def test_the_smoke_run_shares_a_simulator_only_where_its_arguments_mean_the_same() -> None:
    zero = common_args(["--profile", "zero"])
    assert common_args(["--profile", "zero", "--time-scale", "1"]) == zero  # the default scale
    assert common_args(["--profile", "zero", "--record-sends"]) == zero  # only adds to the logs
    assert "--record-sends" in zero
    assert common_args(["--profile", "zero", "--cost", "tokens_per_s=30"]) != zero
    realistic = ["--profile", "realistic", "--time-scale", "0.05"]
    assert common_args(realistic) == [*realistic, "--record-sends"]


def test_the_simulator_logs_each_delta_with_its_send_time(
    start_sim: Callable[..., SimServer],
) -> None:
    server = start_sim("--record-sends")
    client = OpenAI(api_key=server.api_key, base_url=server.base_url, max_retries=0)
    with client.responses.connect() as conn:
        before = time.monotonic()
        conn.response.create(model="sim", input="/chat 40 tides", store=False)
        received: list[tuple[float, dict[str, object]]] = []
        while True:
            event = json.loads(conn.recv_bytes())
            received.append((time.monotonic(), event))
            if event["type"] == "response.completed":
                break
    client.close()
    deltas = [(at, event) for at, event in received if "delta" in event]
    sends = sends_of(server.last_connection())
    assert [s.sequence for s in sends] == [event["sequence_number"] for _, event in deltas]
    assert [s.delta for s in sends] == [event["delta"] for _, event in deltas]
    assert {s.item for s in sends} == {event["item_id"] for _, event in deltas}
    assert {s.request for s in sends} == {1}
    # Send times are CLOCK_MONOTONIC: after the request left, before the client had each delta.
    for sent, (arrived, _) in zip(sends, deltas, strict=True):
        assert before <= sent.at <= arrived


def test_without_the_option_nothing_is_recorded(sim_server: SimServer) -> None:
    client = OpenAI(api_key=sim_server.api_key, base_url=sim_server.base_url, max_retries=0)
    client.responses.create(model="sim", input="/chat 10 tides", store=False, stream=False)
    client.close()
    assert "sends" not in sim_server.last_connection("http")


def test_latency_is_taken_when_the_client_has_the_text_up_to_each_delta() -> None:
    texts = ["Hel", "lo", " you"]
    sends = [Sent(2, i, 10.0 + i / 1000, "msg_a", text) for i, text in enumerate(texts)]
    # The first two deltas arrived coalesced in one fragment, the third on its own.
    receipts = {"msg_a": [(10.0015, 5), (10.004, 9)]}
    found = delivery(sends, receipts, {"msg_a": "Hello you"})
    assert found.latencies_ms == pytest.approx([1.5, 0.5, 2.0])
    assert found.errors == 0

    lost = delivery(sends, {"msg_a": [(10.0015, 5)]}, {"msg_a": "Hello"})
    assert (lost.missing, lost.wrong_items) == (1, 1)


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 50) == 1.5
    assert percentile(list(map(float, range(101))), 99) == 99.0
    assert math.isnan(percentile([], 50))


def test_rows_compare_the_value_with_the_baseline_and_the_target() -> None:
    slower = Row("s", "m", 1.3, 1.0, Target("ratio", "<=", 1.25))
    assert (slower.ratio, slower.passed, slower.result) == (1.3, False, "FAIL")
    added = Row("s", "m", 1.4, 0.5, Target("added", "<=", 1.0, " ms"))
    assert added.passed is True
    assert str(added.target) == "≤ baseline + 1 ms"
    no_errors = Row("s", "errors", 0, 0, Target("value", "<=", 0))
    assert (no_errors.ratio, no_errors.passed) == (1.0, True)
    assert Row("s", "errors", 3, 0).ratio is None
    smoke = Row("s", "m", 2.0, 1.0, Target("ratio", ">=", 0.8), enforced=False)
    assert smoke.result == "pass (not enforced)"
    table = Table([slower, Row("s", "resume", not_run="not built yet")])
    assert "not run: not built yet" in table.text()
    assert table.markdown().count("\n") == 3
