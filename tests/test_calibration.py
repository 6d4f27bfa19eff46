"""The realistic profile's calibration: a 20-tool-call run is ~40 % faster over WebSocket deltas.

The reference run (docs/simulator.md, "Calibration"): a research task of 20 sequential tool
calls, each tool output about 120 tokens, then a final answer. Arm A sends it over HTTP with
``store=false`` and the full context every step; arm B over one WebSocket with
``previous_response_id`` and deltas.
Time is the model time the cost model charged (``charged_ms``), so the check runs at
``--time-scale 0`` without sleeping and without depending on the machine's speed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from openai import OpenAI

from tests.simserver import SimServer

INSTRUCTIONS = "You are a careful research assistant. Use the lookup tool for every fact you need."
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "lookup",
        "description": "Look up one fact about a topic.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
            "additionalProperties": False,
        },
        "strict": True,
    }
]
PROMPT = "/research 20 how websocket mode speeds up agent loops"
TOOL_OUTPUT = " ".join(["Finding: persistent connections keep per-turn state warm."] * 15)


def tool_outputs(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"type": "function_call_output", "call_id": item["call_id"], "output": TOOL_OUTPUT}
        for item in output
        if item["type"] == "function_call"
    ]


def http_full_context(client: OpenAI) -> int:
    transcript: list[dict[str, Any]] = [{"role": "user", "content": PROMPT}]
    steps = 0
    while True:
        response = client.responses.create(
            model="sim",
            instructions=INSTRUCTIONS,
            tools=TOOLS,  # type: ignore[arg-type]
            input=transcript,  # type: ignore[arg-type]
            store=False,
        )
        steps += 1
        output = [item.model_dump(exclude_none=True) for item in response.output]
        outputs = tool_outputs(output)
        if not outputs:
            return steps
        transcript += output + outputs


def websocket_deltas(client: OpenAI) -> int:
    steps = 0
    with client.responses.connect() as conn:
        new_items: list[dict[str, Any]] = [{"role": "user", "content": PROMPT}]
        previous = None
        while True:
            conn.response.create(
                model="sim",
                instructions=INSTRUCTIONS,
                tools=TOOLS,  # type: ignore[arg-type]
                input=new_items,  # type: ignore[arg-type]
                store=False,
                **({"previous_response_id": previous} if previous else {}),
            )
            while (event := json.loads(conn.recv_bytes()))["type"] != "response.completed":
                assert event["type"] != "error", event
            steps += 1
            previous = event["response"]["id"]
            new_items = tool_outputs(event["response"]["output"])
            if not new_items:
                return steps


def charged(server: SimServer, run: Callable[[OpenAI], int], transport: str) -> tuple[float, int]:
    before = {c["id"] for c in server.connections()}
    with OpenAI(api_key=server.api_key, base_url=server.base_url, max_retries=0) as client:
        steps = run(client)
    logs = [server.connection(c["id"]) for c in server.connections() if c["id"] not in before]
    assert {log["transport"] for log in logs} == {transport}
    records = [record for log in logs for record in log["log"]]
    assert len(records) == steps
    return sum(record["charged_ms"] for record in records), steps


def test_realistic_profile_makes_websocket_deltas_about_forty_percent_faster(start_sim) -> None:
    server = start_sim("--profile", "realistic", "--time-scale", "0")
    http_ms, http_steps = charged(server, http_full_context, "http")
    ws_ms, ws_steps = charged(server, websocket_deltas, "websocket")
    assert http_steps == ws_steps == 21  # 20 tool calls and the final answer
    saving = 1 - ws_ms / http_ms
    print(f"HTTP {http_ms:.0f} ms, WebSocket {ws_ms:.0f} ms: {saving:.1%} less time")
    assert 0.35 <= saving <= 0.45, f"HTTP {http_ms:.0f} ms, WebSocket {ws_ms:.0f} ms: {saving:.0%}"


def test_zero_profile_charges_nothing(sim_server: SimServer) -> None:
    ms, steps = charged(sim_server, websocket_deltas, "websocket")
    assert steps == 21
    assert ms == 0
