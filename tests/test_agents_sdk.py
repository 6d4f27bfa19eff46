"""The openai-agents SDK, in its WebSocket transport, runs an agent to completion."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.simserver import SimServer

CLIENT = Path(__file__).with_name("agents_sdk_client.py")


def test_an_agent_with_a_function_tool_runs_to_completion_over_one_websocket(
    sim_server: SimServer, tmp_path: Path
) -> None:
    before = {c["id"] for c in sim_server.connections()}
    done = subprocess.run(
        [sys.executable, "-P", str(CLIENT), sim_server.base_url, sim_server.api_key],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])

    assert report["items"] == ["tool_call_item", "tool_call_output_item", "message_output_item"]
    assert len(report["queries"]) == 1
    assert "FACT-42" in report["final"]  # the answer read the tool's output

    new = [c for c in sim_server.connections() if c["id"] not in before]
    assert [c["transport"] for c in new] == ["websocket"]
    log = sim_server.connection(new[0]["id"])
    assert [r["status"] for r in log["log"]] == ["completed", "completed"]
    assert log["log"][-1]["response_id"] == report["last_response_id"]
    # The SDK sends "stream": true inside the frame; the simulator tolerates it.
    assert all(f["type"] == "response.create" for f in log["frames"])
