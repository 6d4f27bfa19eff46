"""Runs an openai-agents Agent with a function tool over its WebSocket transport.

Started by test_agents_sdk.py with ``python -P`` from outside the checkout: the project's own
``agents`` package would otherwise shadow the SDK's module of the same name.
"""

from __future__ import annotations

import asyncio
import json
import sys

from agents import Agent, function_tool, responses_websocket_session, set_tracing_disabled

queries: list[str] = []


@function_tool
def lookup(query: str) -> str:
    """Look up facts about a topic."""
    queries.append(query)
    return f"FACT-42 about {query}"


async def main(base_url: str, api_key: str) -> None:
    set_tracing_disabled(True)
    agent = Agent(name="helper", instructions="Use your tools.", tools=[lookup], model="gpt-4.1")
    async with responses_websocket_session(api_key=api_key, base_url=base_url) as session:
        result = await session.run(agent, "Please look up websocket caching")
    report = {
        "final": result.final_output,
        "queries": queries,
        "items": [item.type for item in result.new_items],
        "last_response_id": result.last_response_id,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
