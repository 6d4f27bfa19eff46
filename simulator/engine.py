"""One response from request to terminal event, with the cost model's timing.

Both transports drive a :class:`Turn` the same way; they differ only in how a parent is found
(the connection cache, or the store) and how events are framed.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from simulator.config import CostModel
from simulator.context import (
    Item,
    canonical,
    context_hash,
    item_tokens,
    orphan_outputs,
    unanswered_calls,
)
from simulator.errors import RequestError
from simulator.introspection import CacheResult, Mode
from simulator.model import CallOut, ModelInput, Output, TextOut, respond
from simulator.requests import CreateRequest
from simulator.store import ResponseRecord

Event = dict[str, Any]
PIECE = re.compile(r"\s*(?:\w+|[^\w\s])")
TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


@dataclass(frozen=True)
class Resolved:
    """A request's full context and what the connection cache contributed to it."""

    parent: ResponseRecord | None
    cache: CacheResult
    context: list[Item]
    input_tokens: int
    cached_tokens: int

    @classmethod
    def build(
        cls, request: CreateRequest, parent: ResponseRecord | None, cache: CacheResult
    ) -> Resolved:
        context = (parent.full if parent else []) + request.input
        problem = _context_problem(context)
        if problem is not None:
            raise problem
        tokens = request.setup_tokens + sum(item_tokens(item) for item in context)
        cached = 0
        if parent is not None and cache == "hit":
            same_setup = parent.setup_key == request.setup_key
            cached = parent.prefix_tokens + (request.setup_tokens if same_setup else 0)
        return cls(parent, cache, context, tokens, min(cached, tokens))

    @property
    def uncached_tokens(self) -> int:
        return self.input_tokens - self.cached_tokens


def _context_problem(context: list[Item]) -> RequestError | None:
    orphans = orphan_outputs(context)
    if orphans:
        return RequestError.invalid(
            "input", f"No tool call found for function call output with call_id {orphans[0]}."
        )
    pending = unanswered_calls(context)
    if pending:
        return RequestError.invalid(
            "input", f"No tool output found for function call {pending[0]}."
        )
    return None


def mode_of(request: CreateRequest) -> Mode:
    if not request.generate:
        return "warm"
    return "delta" if request.previous_response_id else "create"


class Turn:
    """Generates one response's events; ``record`` is set once it completes."""

    def __init__(
        self,
        request: CreateRequest,
        resolved: Resolved,
        costs: CostModel,
        seed: int,
        lane: str | None,
        fail_with: str | None = None,
        hydrate: bool = False,
    ) -> None:
        self.request, self.resolved, self.costs = request, resolved, costs
        self.seed, self.lane, self.fail_with, self.hydrate = seed, lane, fail_with, hydrate
        self.id = new_id("resp")
        self.created_at = int(time.time())
        self.sequence = 0
        self.record: ResponseRecord | None = None
        self.output_tokens = 0
        self.status = "in_progress"
        self._truncated = False
        self.charged_ms = 0.0  # model time this response cost, unscaled (the cost model's view)

    async def events(self) -> AsyncIterator[Event]:
        costs = self.costs
        await self._charge(costs.turn_ms + (costs.hydrate_ms if self.hydrate else 0.0))
        prefill = costs.prefill_ms(self.resolved.uncached_tokens, self.resolved.cached_tokens)
        yield self._event("response.created", response=self.response_object("in_progress", []))
        if not self.request.generate:
            await self._charge(prefill)
            yield self._finish([], "completed")
            return
        yield self._event("response.in_progress", response=self.response_object("in_progress", []))
        await self._charge(prefill + costs.ttft_ms)
        if self.fail_with is not None:
            yield self._failed(self.fail_with)
            return
        pacer = _Pacer(costs)
        items: list[Item] = []
        status = "completed"
        for index, output in enumerate(self._outputs()):
            stream = (
                self._text(index, output)
                if isinstance(output, TextOut)
                else self._call(index, output)
            )
            async for event in stream:
                if event["type"] == "response.output_item.done":
                    items.append(event["item"])
                yield event
                if "delta" in event:
                    await pacer.tick()
            if self._truncated:
                status = "incomplete"
                break
        yield self._finish(items, status)

    def _outputs(self) -> list[Output]:
        request = self.request
        return respond(
            ModelInput(
                items=self.resolved.context,
                tools=request.tools,
                tool_choice=request.tool_choice,
                parallel_tool_calls=request.parallel_tool_calls,
                metadata=request.metadata,
                seed=self.seed,
            )
        )

    async def _text(self, index: int, output: TextOut) -> AsyncIterator[Event]:
        item_id = new_id("msg")
        pieces = PIECE.findall(output.text)
        limit = self.request.max_output_tokens
        if limit is not None and self.output_tokens + len(pieces) > limit:
            pieces = pieces[: max(limit - self.output_tokens, 0)]
            self._truncated = True
        text = "".join(pieces)
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        item = {
            "id": item_id,
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        where = {"item_id": item_id, "output_index": index, "content_index": 0}
        yield self._event("response.output_item.added", output_index=index, item=item)
        yield self._event("response.content_part.added", **where, part=part)
        for piece in pieces:
            self.output_tokens += 1
            yield self._event("response.output_text.delta", **where, delta=piece, logprobs=[])
        yield self._event("response.output_text.done", **where, text=text, logprobs=[])
        done_part = {**part, "text": text}
        yield self._event("response.content_part.done", **where, part=done_part)
        status = "incomplete" if self._truncated else "completed"
        final = {**item, "status": status, "content": [done_part]}
        yield self._event("response.output_item.done", output_index=index, item=final)

    async def _call(self, index: int, output: CallOut) -> AsyncIterator[Event]:
        item_id = new_id("fc")
        item = {
            "id": item_id,
            "type": "function_call",
            "status": "in_progress",
            "call_id": output.call_id,
            "name": output.name,
            "arguments": "",
        }
        yield self._event("response.output_item.added", output_index=index, item=item)
        where = {"item_id": item_id, "output_index": index}
        for piece in PIECE.findall(output.arguments):
            self.output_tokens += 1
            yield self._event("response.function_call_arguments.delta", **where, delta=piece)
        yield self._event(
            "response.function_call_arguments.done",
            **where,
            name=output.name,
            arguments=output.arguments,
        )
        final = {**item, "status": "completed", "arguments": output.arguments}
        yield self._event("response.output_item.done", output_index=index, item=final)

    async def _charge(self, ms: float) -> None:
        self.charged_ms += ms
        await self.costs.pause(ms)

    def _finish(self, items: list[Item], status: str) -> Event:
        self.status = status
        if self.costs.tokens_per_s > 0:
            self.charged_ms += self.output_tokens * 1000.0 / self.costs.tokens_per_s
        body = self.response_object(status, items, usage=self.usage())
        if status == "incomplete":
            body["incomplete_details"] = {"reason": "max_output_tokens"}
        self.record = ResponseRecord(
            id=self.id,
            lane=self.lane,
            context=self.resolved.context,
            output=[canonical(item) for item in items],
            prefix_tokens=0,
            setup_key=self.request.setup_key,
            setup_tokens=self.request.setup_tokens,
            body=body,
        )
        self.record.prefix_tokens = sum(item_tokens(item) for item in self.record.full)
        return self._event(f"response.{status}", response=body)

    def _failed(self, code: str) -> Event:
        self.status = "failed"
        body = self.response_object("failed", [], usage=self.usage())
        message = "Simulated failure."
        if code == "rate_limit_exceeded":
            message = "Rate limit reached for requests. Please try again in 1.5s."
        body["error"] = {"code": code, "message": message}
        return self._event("response.failed", response=body)

    def usage(self) -> dict[str, Any]:
        tokens = self.resolved.input_tokens if self.request.generate else 0
        cached = self.resolved.cached_tokens if self.request.generate else 0
        return {
            "input_tokens": tokens,
            "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": tokens + self.output_tokens,
        }

    @property
    def context_hash(self) -> str:
        return context_hash(self.resolved.context)

    def response_object(
        self, status: str, output: list[Item], usage: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        request = self.request
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": request.instructions,
            "max_output_tokens": request.max_output_tokens,
            "model": request.model,
            "output": output,
            "parallel_tool_calls": request.parallel_tool_calls,
            "previous_response_id": request.previous_response_id,
            "reasoning": {"effort": None, "summary": None},
            "store": request.store,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": request.tool_choice,
            "tools": [_tool_object(tool) for tool in request.tools],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage,
            "user": None,
            "metadata": request.metadata,
        }

    def _event(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event


def _tool_object(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function":
        return tool
    return {
        "type": "function",
        "name": tool["name"],
        "description": tool.get("description"),
        "parameters": tool.get("parameters"),
        "strict": tool.get("strict", True),
    }


class _Pacer:
    """Spaces tokens at ``tokens_per_s``, sleeping only when ahead of schedule by over 1 ms."""

    def __init__(self, costs: CostModel) -> None:
        rate = costs.tokens_per_s
        self.interval = costs.time_scale / rate if rate > 0 else 0.0
        self.start = time.monotonic()
        self.count = 0

    async def tick(self) -> None:
        if not self.interval:
            return
        self.count += 1
        ahead = self.start + self.count * self.interval - time.monotonic()
        if ahead > 0.001:
            await asyncio.sleep(ahead)
