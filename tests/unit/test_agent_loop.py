"""The agent loop against a fake host (agents/run/host.py) and the in-process simulator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from agents.models import Item, Session, Step, Tool
from agents.run import transcript
from agents.run.events import (
    ItemAdded,
    ItemDone,
    ItemStarted,
    RunEvent,
    StepDone,
    StepUpdated,
    TextDelta,
)
from agents.run.host import RunHost
from agents.run.loop import STOPPED_CALL, AgentLoop
from agents.run.stop import StopSignal
from agents.run.writes import WriteBehind
from agents.upstream.clients import shared_client
from agents.upstream.delta import Item as ItemData
from agents.upstream.http import HttpUpstream
from agents.upstream.websocket import UpstreamSession
from tests.unit.helpers import API_KEY, Served, StartSimulator

pytestmark = [pytest.mark.unit, pytest.mark.django_db(transaction=True)]

QUERY_SCHEMA = {
    "type": "object",
    "properties": {"query": {"type": "string"}},
    "required": ["query"],
    "additionalProperties": False,
}


class Host:
    """A run's host as a test sees it: every event, checkpoint, fall-back and question kept."""

    def __init__(self, served: Served, api_key: str = API_KEY) -> None:
        self.stop = StopSignal()
        self.websocket = UpstreamSession(served.base_url, api_key)
        self.http = HttpUpstream(shared_client(served.base_url, api_key))
        self.on_http = False
        self.events: list[RunEvent] = []
        self.durable: list[int] = []  # checkpoint bases, once their writes committed
        self.fallbacks: list[str] = []
        self.asked: list[tuple[str, str]] = []
        self.answer = "typed by a person"
        self.watch: Callable[[RunEvent], None] = lambda event: None

    @property
    def transport(self) -> UpstreamSession | HttpUpstream:
        return self.http if self.on_http else self.websocket

    def publish(self, event: RunEvent) -> None:
        self.events.append(event)
        self.watch(event)

    async def ask(self, call: ItemData, kind: str) -> str:
        self.asked.append((str(call["name"]), kind))
        return self.answer

    def checkpoint(self, writes: WriteBehind, base: int) -> None:
        writes.then(lambda: self.durable.append(base))

    def fall_back(self, reason: str) -> None:
        self.fallbacks.append(reason)
        self.on_http = True
        self.websocket.discard()

    async def rotate_if_due(
        self, fields: dict[str, Any], context: list[ItemData], lane: str | None = None
    ) -> bool:
        return False

    def halt(self, status: str) -> None:
        """What the runner does on a stop: raise the signal and drop the transport."""
        self.stop.halt(status)
        self.transport.discard()

    async def close(self) -> None:
        await self.websocket.close()
        await self.http.close()


def typed(host: RunHost) -> RunHost:
    """The fake is a RunHost (checked by mypy)."""
    return host


async def session_with(message: str, *tools: Tool, **fields: Any) -> Session:
    session = await Session.objects.acreate(model="sim", max_steps=5, **fields)
    for tool in tools:
        tool.session = session
        await tool.asave()
    await transcript.append(session, 0, transcript.user_message(message))
    return session


async def run(host: Host, session: Session) -> tuple[str, str]:
    writes = WriteBehind(str(session.pk), session.fence)
    loop = AgentLoop(typed(host), session, 0, writes)
    try:
        return await loop.run()
    finally:
        await writes.flush()
        await host.close()


async def items_of(session: Session) -> list[Item]:
    return [i async for i in Item.objects.filter(session=session).order_by("position")]


async def steps_of(session: Session) -> list[Step]:
    return [s async for s in Step.objects.filter(session=session).order_by("id")]


def lookup_tool(mode: str = Tool.Mode.MOCK) -> Tool:
    return Tool(
        name="lookup",
        parameters=QUERY_SCHEMA,
        mode=mode,
        mock_output="Tide at {{query}}: high at 6:05.",
    )


async def test_a_tool_call_round_trip_is_two_steps_on_one_socket(served: StartSimulator) -> None:
    sim = await served()
    host = Host(sim)
    session = await session_with("/lookup tide tables", lookup_tool())

    assert await run(host, session) == ("completed", "")

    items = await items_of(session)
    assert [(i.kind, i.role, i.status) for i in items] == [
        ("message", "user", "completed"),
        ("function_call", "", "completed"),
        ("function_call_output", "", "completed"),
        ("message", "assistant", "completed"),
    ]
    call, output = items[1].data, items[2].data
    assert output["call_id"] == call["call_id"]
    assert output["output"].startswith("Tide at ")
    steps = await steps_of(session)
    assert [(s.mode, s.socket, s.status) for s in steps] == [
        ("create", "fresh", "completed"),
        ("delta", "reused", "completed"),
    ]
    assert steps[1].previous_response_id == steps[0].response_id
    # The call and its output belong to the first step, the reply to the second.
    assert [i.step_id for i in items] == [None, steps[0].pk, steps[0].pk, steps[1].pk]
    assert sim.websocket_logs() == [[("create", "completed"), ("delta", "completed")]]

    # The call's arguments and the reply stream as deltas between their start and done.
    kinds = [type(e) for e in host.events if not isinstance(e, TextDelta)]
    # The tool step's line comes again once its tools ran, with their time (StepUpdated).
    assert kinds == [
        ItemStarted, ItemDone, StepDone, ItemAdded, StepUpdated, ItemStarted, ItemDone, StepDone
    ]  # fmt: skip
    (added,) = [e for e in host.events if isinstance(e, ItemAdded)]
    assert added.item.data == output
    deltas = "".join(e.text for e in host.events if isinstance(e, TextDelta))
    assert deltas.endswith(items[3].text)  # the reply streamed, then was kept whole
    # Checkpoints mark each boundary once its writes are durable, ending past the last item.
    assert host.durable == sorted(host.durable)
    assert host.durable[-1] == 4


async def test_a_manual_tool_asks_the_host_and_its_answer_goes_upstream(
    served: StartSimulator,
) -> None:
    sim = await served()
    host = Host(sim)
    session = await session_with("/lookup harbour", lookup_tool(Tool.Mode.MANUAL))

    assert (await run(host, session))[0] == "completed"

    assert host.asked == [("lookup", "output")]
    items = await items_of(session)
    assert items[2].data["output"] == "typed by a person"


async def test_stop_mid_stream_keeps_the_partial_reply_as_stopped(
    served: StartSimulator,
) -> None:
    sim = await served(tokens_per_s=400)  # a 400-token reply streams for about a second
    host = Host(sim)
    session = await session_with("/chat 400 a long answer about waves")

    def stop_at_the_third_delta(event: RunEvent) -> None:
        if sum(isinstance(e, TextDelta) for e in host.events) == 3:
            asyncio.get_running_loop().call_soon(host.halt, "stopped")

    host.watch = stop_at_the_third_delta
    status, message = await run(host, session)

    assert status == "stopped"
    assert "partial reply is kept" in message
    items = await items_of(session)
    assert [(i.role, i.status) for i in items] == [("user", "completed"), ("assistant", "stopped")]
    kept = items[1].text
    assert kept
    assert len(kept.split()) < 300
    assert items[1].in_context  # a stopped message's text stays in the context
    (step,) = await steps_of(session)
    assert step.status == "stopped"
    assert isinstance(host.events[-1], StepDone)


async def test_stop_while_a_tool_waits_answers_the_call_with_an_error(
    served: StartSimulator,
) -> None:
    sim = await served()
    host = Host(sim)
    session = await session_with("/lookup harbour", lookup_tool(Tool.Mode.MANUAL))

    async def never(call: ItemData, kind: str) -> str:
        host.halt("stopped")  # a person stops the run instead of answering
        await asyncio.Event().wait()
        return ""

    host.ask = never  # type: ignore[method-assign]
    status, _ = await run(host, session)

    assert status == "stopped"
    items = await items_of(session)
    assert [i.kind for i in items] == ["message", "function_call", "function_call_output"]
    assert items[2].data["output"] == STOPPED_CALL
    assert items[2].data["call_id"] == items[1].data["call_id"]


async def test_a_halt_before_the_step_sends_nothing(served: StartSimulator) -> None:
    sim = await served()
    host = Host(sim)
    host.stop.halt("interrupted")
    session = await session_with("/chat 10 hello")

    assert await run(host, session) == ("interrupted", "Interrupted.")
    assert sim.websocket_logs() == []
    assert [i.role for i in await items_of(session)] == ["user"]


async def test_a_refused_upgrade_falls_back_to_http_and_completes(
    served: StartSimulator,
) -> None:
    sim = await served()
    sim.simulator.faults.next("upgrade_status=426")
    host = Host(sim)
    session = await session_with("/lookup tide tables", lookup_tool())

    assert (await run(host, session))[0] == "completed"

    assert host.fallbacks == ["the upstream has no WebSocket mode (HTTP 426)"]
    steps = await steps_of(session)
    assert [(s.mode, s.socket, s.status) for s in steps] == [
        ("create", "http", "completed"),
        ("create", "http", "completed"),  # store=false: nothing to chain to over HTTP
    ]
    assert sim.websocket_logs() == []  # the refused upgrade opened no connection
    assert sim.http_requests() == 2


async def test_a_refused_key_fails_at_once_without_falling_back(served: StartSimulator) -> None:
    sim = await served(api_keys=frozenset({API_KEY}))
    host = Host(sim, api_key="a-wrong-key")
    session = await session_with("/chat 10 hello")

    status, message = await run(host, session)

    assert status == "failed"
    assert "HTTP 401" in message
    assert "Check OPENAI_API_KEY" in message
    assert host.fallbacks == []
    assert await steps_of(session) == []
