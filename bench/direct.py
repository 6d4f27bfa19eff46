"""The baseline client: the official SDK straight to the simulator, doing the playground's work.

It opens ``responses.connect()``, prewarms with ``generate: false``, then chains every step with
``previous_response_id`` and only the new items, reading raw frames with ``recv_bytes()`` and
``json.loads``, and answers each function call with the output the playground's mock tool gives.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from openai import AsyncOpenAI
from openai.resources.responses.responses import AsyncResponsesConnection

from agents.run.transcript import user_message
from agents.tools.executor import render_mock
from agents.upstream.websocket import MAX_FRAME_BYTES
from bench.browser import ToolSpec

TERMINAL = frozenset({"response.completed", "response.failed", "response.incomplete", "error"})


@dataclass
class Response:
    """One response as the client read it: terminal event, and each delta's arrival."""

    terminal: dict[str, Any]
    # (arrival time, item_id, delta text) for every delta event
    deltas: list[tuple[float, str, str]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.terminal["response"]["id"])

    @property
    def output(self) -> list[dict[str, Any]]:
        return list(self.terminal["response"]["output"])

    def receipts(self) -> dict[str, list[tuple[float, int]]]:
        """Per item: (arrival time, characters received so far), one entry per delta."""
        seen: dict[str, list[tuple[float, int]]] = {}
        for at, item, delta in self.deltas:
            entries = seen.setdefault(item, [])
            entries.append((at, (entries[-1][1] if entries else 0) + len(delta)))
        return seen

    def texts(self) -> dict[str, str]:
        texts: dict[str, list[str]] = {}
        for _, item, delta in self.deltas:
            texts.setdefault(item, []).append(delta)
        return {item: "".join(parts) for item, parts in texts.items()}


class DirectClient:
    """One SDK WebSocket to the simulator with the playground's request fields."""

    def __init__(self, connection: AsyncResponsesConnection, fields: dict[str, Any]) -> None:
        self.connection = connection
        self.fields = fields
        self.previous: str | None = None

    async def create(self, items: list[dict[str, Any]], *, generate: bool = True) -> Response:
        body: dict[str, Any] = {"type": "response.create", **self.fields, "input": items}
        if self.previous:
            body["previous_response_id"] = self.previous
        if not generate:
            body["generate"] = False
        await self.connection.send_raw(json.dumps(body))
        deltas: list[tuple[float, str, str]] = []
        while True:
            event = json.loads(await self.connection.recv_bytes())
            if "delta" in event:
                deltas.append((time.monotonic(), str(event.get("item_id", "")), event["delta"]))
            elif event.get("type") in TERMINAL:
                break
        if event["type"] != "response.completed":
            raise RuntimeError(f"the simulator answered {event['type']}: {event}")
        response = Response(event, deltas)
        self.previous = response.id
        return response

    async def prewarm(self) -> None:
        await self.create([], generate=False)


@asynccontextmanager
async def direct_client(
    base_url: str, api_key: str, fields: dict[str, Any]
) -> AsyncIterator[DirectClient]:
    client = AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0)
    options: Any = {"max_size": MAX_FRAME_BYTES}
    try:
        async with client.responses.connect(websocket_connection_options=options) as connection:
            yield DirectClient(connection, fields)
    finally:
        await client.close()


def tool_outputs(output: list[dict[str, Any]], tools: dict[str, ToolSpec]) -> list[dict[str, Any]]:
    """The playground's answer to each function call: its mock output, placeholders filled."""
    answers = []
    for item in output:
        if item.get("type") != "function_call":
            continue
        tool = tools[item["name"]]
        arguments = json.loads(item.get("arguments") or "{}")
        text = render_mock(tool.mock_output, arguments)
        answers.append({"type": "function_call_output", "call_id": item["call_id"], "output": text})
    return answers


async def tool_run(client: DirectClient, message: str, tools: list[ToolSpec]) -> tuple[float, int]:
    """One agent run from the user's message to the final answer: (seconds, responses)."""
    by_name = {tool.name: tool for tool in tools}
    started = time.monotonic()
    items = [user_message(message)]
    steps = 0
    while True:
        response = await client.create(items)
        steps += 1
        items = tool_outputs(response.output, by_name)
        if not items:
            return time.monotonic() - started, steps
