"""The 20-tool-call research run, through the playground and by the direct client.

The run is the simulator's calibration task (docs/simulator.md, "Calibration"): short
instructions, one tool answering with about 120 tokens, ``/research N`` sequential calls and a
final answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.browser import Browser, ToolSpec
from bench.direct import direct_client, tool_run
from bench.stack import Stack

INSTRUCTIONS = "You are a careful research assistant. Use the lookup tool for every fact you need."
LOOKUP = ToolSpec(
    name="lookup",
    description="Look up one fact about a topic.",
    parameters={
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
        "additionalProperties": False,
    },
    mock_output="Notes on {{query}}: "
    + " ".join(["Finding: persistent connections keep per-turn state warm."] * 14),
)
TOPIC = "how websocket mode speeds up agent loops"


def prompt(steps: int) -> str:
    return f"/research {steps} {TOPIC}"


def direct_fields(store: bool = False) -> dict[str, Any]:
    """The fields the playground sends with every create (``Session.request_fields``)."""
    return {
        "model": "sim",
        "store": store,
        "instructions": INSTRUCTIONS,
        "tools": [LOOKUP.definition()],
    }


@dataclass
class Run:
    seconds: float
    logs: list[dict[str, Any]]  # the simulator's logs of the connections the run opened

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every model request of the run (the prewarm excluded)."""
        return [r for log in self.logs for r in log["log"] if r["mode"] != "warm"]

    @property
    def hit_rate(self) -> float:
        chained = self.requests
        return 100.0 * sum(1 for r in chained if r["cache"] == "hit") / max(len(chained), 1)

    @property
    def bytes_per_step(self) -> float:
        return sum(int(r["bytes"]) for r in self.requests) / max(len(self.requests), 1)

    def check(self, steps: int) -> Run:
        statuses = [r["status"] for r in self.requests]
        if statuses != ["completed"] * (steps + 1):
            raise RuntimeError(f"expected {steps + 1} completed responses, got {statuses}")
        return self


async def research_session(browser: Browser, steps: int, **settings: Any) -> str:
    """A new session with the lookup tool and the run's instructions, through the forms."""
    session_id = await browser.new_session()
    await browser.add_tool(session_id, LOOKUP)
    max_steps = max(steps + 5, 25)
    await browser.save_settings(
        session_id, instructions=INSTRUCTIONS, max_steps=max_steps, **settings
    )
    return session_id


async def playground_run(
    stack: Stack, browser: Browser, steps: int, phase: str = "", **settings: Any
) -> Run:
    """Open the session's page, wait for its prewarm (WebSocket), then time the run (profiled as
    ``phase`` with ``BENCH_PROFILE``)."""
    session_id = await research_session(browser, steps, **settings)
    before = await stack.connection_ids()
    tab = await browser.tab(stack.playground.ws_base, session_id).open()
    try:
        if settings.get("transport", "websocket") == "websocket":
            await stack.wait_warm(before)
        with stack.playground.phase(phase or "untimed"):
            turn = await tab.run(prompt(steps), wait=300)
    finally:
        await tab.close()
    return Run(turn.ended_at - turn.sent_at, await stack.new_logs(before)).check(steps)


async def direct_run(stack: Stack, steps: int) -> Run:
    """The same run by the SDK client: prewarm (untimed), then the timed run."""
    before = await stack.connection_ids()
    async with direct_client(stack.sim.base_url, stack.api_key, direct_fields()) as client:
        await client.prewarm()
        seconds, _ = await tool_run(client, prompt(steps), [LOOKUP])
    return Run(seconds, await stack.new_logs(before)).check(steps)
