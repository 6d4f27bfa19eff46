"""One run of the agent loop: response → function calls → outputs → next response, with recovery.

Recovery follows the client checklist (§4, items 13-28): a cache miss is resent once in full, a
connection-age limit reconnects, transient failures back off and retry, then the session falls
back to HTTP; nothing is ever replayed once any of its output reached a browser, and a function
call is answered exactly once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from django.conf import settings

from agents import dbthread
from agents.metrics import RUNS_IN_FLIGHT, UPSTREAM_ERRORS, UPSTREAM_RECONNECTS
from agents.models import Item, Session, Step, Tool
from agents.run import transcript
from agents.run.events import ItemAdded, ItemDone, ItemStarted, StepDone, StepUpdated, TextDelta
from agents.run.host import RunHost
from agents.run.placement import Lane, Positions
from agents.run.retry import backoff, error_kind, outcome, retryable
from agents.run.steps import Loaded, Partial, StepOutcome, load
from agents.run.writes import WriteBehind
from agents.tools.executor import answer
from agents.upstream.delta import Stored
from agents.upstream.turn import UpstreamError, UpstreamRefused, UpstreamTurn
from agents.upstream.websocket import NO_WEBSOCKET

TEXT_DELTAS = frozenset({"response.output_text.delta", "response.function_call_arguments.delta"})
# A refused key is not retried: it will not get better (item 21).
REFUSED_KEY = frozenset({401, 403})
STOPPED_CALL = "Error: the run was stopped before this tool answered."


class AgentLoop:
    def __init__(
        self,
        host: RunHost,
        session: Session,
        user_position: int,
        writes: WriteBehind,
        *,
        positions: Positions | None = None,
        route: Lane | None = None,
        loaded: Loaded | None = None,
    ) -> None:
        self.host = host
        self.loaded = loaded
        self.session = session
        self.user_position = user_position
        # The next free position (a regenerate's run starts past every branch's items), and the
        # branch's last item, which the next one follows.
        self.positions = positions or Positions(user_position + 1)
        self.tip = user_position
        route = route or Lane()
        self.path, self.lane, self.column, self.tool_names = (
            route.path, route.lane, route.column, route.tools
        )  # fmt: skip
        self.stored: Stored | None = None
        self.started = time.monotonic()
        self.tools: dict[str, Tool] = {}
        self.steps: list[Step] = []
        # What the upstream must see, kept here so a step never waits for the database.
        self.context: list[dict[str, Any]] = []
        self.writes = writes
        self.sid = str(session.pk)

    async def run(self) -> tuple[str, str]:
        with RUNS_IN_FLIGHT.track_inprogress():  # down again however it ends, cancelled too
            return await self._steps()

    async def _steps(self) -> tuple[str, str]:
        loaded = self.loaded
        if loaded is None:
            loaded = await dbthread.call(load, self.session, self.path, self.tool_names)
        self.tools, self.context, self.stored = loaded.tools, loaded.context, loaded.stored
        fields = self.session.request_fields(list(self.tools.values()))
        for _ in range(self.session.max_steps):
            outcome = await self.step(fields)
            if outcome.status != "completed" or not outcome.calls:
                return outcome.status, outcome.message
            assert outcome.step is not None
            if not await self.answer_calls(outcome.calls, outcome.step):
                return "stopped", "Stopped while tools were running; their calls are answered."
        limit = self.session.max_steps
        return "incomplete", f"Stopped at the step limit ({limit}); send a message to go on."

    @property
    def position(self) -> int:
        """The next free position: every item of the run is below it."""
        return self.positions.next

    # -- one step, with recovery -----------------------------------------------------------------

    async def step(self, fields: dict[str, Any]) -> StepOutcome:
        context = list(self.context)
        started_ms = (time.monotonic() - self.started) * 1000
        await self.host.rotate_if_due(fields, context, self.lane)
        retries, resent = 0, False
        while True:
            halted = self.host.stop.halted()
            if halted:  # e.g. during a backoff: nothing is in flight
                return StepOutcome(halted, f"{halted.title()}.")
            transport = self.host.transport
            partials: dict[str, Partial] = {}
            saved: list[Item] = []
            turn: UpstreamTurn | None = None
            try:
                async with transport.turn(
                    fields, context, lane=self.lane, stored=self.stored
                ) as turn:
                    async for event in turn:
                        await self.relay(event, partials, saved)
            except UpstreamRefused as exc:
                UPSTREAM_ERRORS.labels(kind="refused").inc()
                if exc.status in NO_WEBSOCKET and transport.transport == "websocket":
                    self.host.fall_back(f"the upstream has no WebSocket mode (HTTP {exc.status})")
                    continue
                if exc.status in REFUSED_KEY:
                    return StepOutcome("failed", f"{exc} Check OPENAI_API_KEY.")
                error: UpstreamError = exc
            except UpstreamError as exc:
                error = exc
            else:
                assert turn is not None
                if turn.error:
                    UPSTREAM_ERRORS.labels(kind=error_kind(turn)).inc()
                if not (partials or saved) and turn.error:
                    code = turn.error.get("code")
                    if turn.error.get("param") == "stream_id" and transport.refuse_lanes():
                        continue  # no named lanes upstream: the default lane, full context
                    if code == "previous_response_not_found" and not resent:
                        # A cache miss: one transparent full-context resend (item 18).
                        resent = True
                        transport.forget_chain()
                        self.stored = None
                        continue
                    if (
                        code == "websocket_connection_limit_reached"
                        and retries < settings.UPSTREAM_RETRIES
                    ):
                        transport.discard()  # a new socket and a full create (item 19)
                        UPSTREAM_RECONNECTS.labels(kind="connection_limit").inc()
                        retries += 1
                        continue
                    if retryable(turn) and retries < settings.UPSTREAM_RETRIES:
                        retries += 1
                        await self.host.stop.until_stopped(
                            asyncio.sleep(backoff(retries, turn.error))
                        )
                        continue
                return await self.finish(turn, partials, saved, retries, started_ms)
            # The transport broke: halted (by the user, or a lost lease), or lost.
            halted = self.host.stop.halted()
            if not halted and not isinstance(error, UpstreamRefused):
                UPSTREAM_ERRORS.labels(kind="connection").inc()  # a stop's abort is no error
            if halted or partials or saved:
                # Never replayed once output reached a browser (item 22).
                status = halted or "interrupted"
                kept = await self.keep_partials(partials, status)
                if turn is not None:
                    turn.cut_short()
                    await self.record(turn, status, [*saved, *kept], retries, started_ms)
                if halted == "stopped":
                    return StepOutcome("stopped", "Stopped. The partial reply is kept.")
                reason = "The run was interrupted." if halted else str(error)
                return StepOutcome(
                    "interrupted", f"{reason} The partial reply is kept; send again to retry."
                )
            if retries < settings.UPSTREAM_RETRIES:
                retries += 1
                UPSTREAM_RECONNECTS.labels(kind="retry").inc()  # the broken one was discarded
                await self.host.stop.until_stopped(asyncio.sleep(backoff(retries, {})))
                continue
            if transport.transport == "websocket":
                self.host.fall_back(f"the WebSocket failed {retries + 1} times ({error})")
                retries = 0
                continue
            return StepOutcome("failed", f"{error} Send again to retry.")

    async def finish(
        self,
        turn: UpstreamTurn,
        partials: dict[str, Partial],
        saved: list[Item],
        retries: int,
        started_ms: float,
    ) -> StepOutcome:
        assert turn.terminal is not None
        status, message = outcome(turn.terminal)
        kept = await self.keep_partials(partials, "interrupted") if partials else []
        step = await self.record(turn, status, [*saved, *kept], retries, started_ms)
        calls = [item for item in saved if item.kind == "function_call"]
        return StepOutcome(status, message, calls if status == "completed" else [], step)

    async def relay(
        self, event: dict[str, Any], partials: dict[str, Partial], saved: list[Item]
    ) -> None:
        """Publish one upstream event to the browsers; persist each item as it completes."""
        kind = event.get("type")
        if kind in TEXT_DELTAS:
            key = str(event.get("item_id", ""))
            partial = partials.get(key)
            if partial is not None:
                partial.text.append(event["delta"])
                self.host.publish(TextDelta(key, event["delta"]))
        elif kind == "response.output_item.added":
            data = event["item"]
            key = str(data.get("id", ""))
            partials[key] = Partial(str(data.get("type")), data)
            label = str(data.get("name") or data.get("role") or data.get("type"))
            self.host.publish(ItemStarted(key, str(data.get("type")), label, self.column))
        elif kind == "response.output_item.done":
            data = event["item"]
            key = str(data.get("id", ""))
            partials.pop(key, None)
            item = self.keep(data)
            saved.append(item)
            self.host.publish(ItemDone(key, item))

    def keep(self, data: dict[str, Any], **fields: Any) -> Item:
        """Add an item to the context now and to the database in the background."""
        position = self.positions.take()
        item = transcript.new_item(self.session, position, data, parent=self.tip, **fields)
        self.tip = position
        if item.in_context:
            self.context.append(data)
        self.writes.submit(item.save)
        return item

    async def keep_partials(self, partials: dict[str, Partial], status: str) -> list[Item]:
        """Keep what streamed of unfinished items; they are the step's too (its waterfall bar
        and its line stay on their branch)."""
        kept = []
        for key, partial in partials.items():
            data, usable = partial.kept()
            item = self.keep(data, status=status, in_context=usable)
            self.host.publish(ItemDone(key, item))
            kept.append(item)
        partials.clear()
        return kept

    async def record(
        self,
        turn: UpstreamTurn,
        status: str,
        saved: list[Item],
        retries: int,
        started_ms: float,
    ) -> Step:
        step = transcript.new_step(
            self.session,
            turn.metrics,
            turn.response_id,
            status,
            retries=retries,
            turn_position=self.user_position,
            started_ms=started_ms,
        )

        def write() -> None:
            step.save()
            if saved:
                Item.objects.filter(pk__in=[i.pk for i in saved]).update(step=step)
            for item in saved:
                item.step = step

        self.writes.submit(write)
        self.steps.append(step)
        self.host.publish(StepDone(step, self.column))
        self.host.checkpoint(self.writes, self.positions.next)
        return step

    # -- function calls --------------------------------------------------------------------------

    async def answer_calls(self, calls: list[Item], step: Step) -> bool:
        """Answer every call (concurrently), each exactly once; False if the user stopped."""
        started = time.monotonic()
        first, after = self.positions.take(len(calls)), self.tip
        self.tip = first + len(calls) - 1
        answered: dict[str, Item] = {}

        def output(index: int, text: str) -> Item:
            call_id = calls[index].data["call_id"]
            data = {"type": "function_call_output", "call_id": call_id, "output": text}
            parent = after if index == 0 else first + index - 1
            item = transcript.new_item(self.session, first + index, data, parent=parent)
            answered[call_id] = item
            item.step = step
            self.host.publish(ItemAdded(item, self.column))
            return item

        async def one(index: int, call: Item) -> None:
            data = call.data
            tool = self.tools.get(str(data.get("name")))

            async def ask(kind: str) -> str:
                return await self.host.ask(data, kind)

            output(index, await answer(tool, str(data.get("arguments", "")), self.sid, ask))

        work = asyncio.gather(*(one(index, call) for index, call in enumerate(calls)))
        stopped = await self.host.stop.until_stopped(work)
        for index, call in enumerate(calls):
            # Every call answered, in call order, or the transcript is invalid upstream; a call
            # the stop cut short gets an error output.
            item = answered.get(call.data["call_id"]) or output(index, STOPPED_CALL)
            self.context.append(item.data)
            self.writes.submit(item.save)
        step.tool_ms = (time.monotonic() - started) * 1000
        self.writes.submit(lambda: step.save(update_fields=["tool_ms"]))
        self.host.publish(StepUpdated(step))  # the live step line gains its tool time
        self.host.checkpoint(self.writes, self.positions.next)
        return not stopped
