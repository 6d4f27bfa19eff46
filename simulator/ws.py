"""WebSocket mode: one connection, its lanes, its cache, its age limit and its faults."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass
from typing import Any

from simulator.asgi import Receive, Send
from simulator.engine import TERMINAL, Event, Resolved, Turn, mode_of
from simulator.errors import RequestError, Shape, injected
from simulator.faults import EventFault, FaultPlan, junk_frames
from simulator.frames import FrameRefused, read_frame, steer_failed
from simulator.host import Host
from simulator.introspection import ConnectionLog, OracleEntry, RequestRecord
from simulator.requests import CreateRequest, claim_lane, parse_create, valid_stream_id
from simulator.store import ConnectionCache, ResponseRecord

YIELD_EVERY = 32  # sends between voluntary yields, so one fast stream cannot starve the loop


class Closed(Exception):
    """The connection is finished (closed by a fault, the age limit, or the client)."""


@dataclass
class Queued:
    request: CreateRequest
    record: RequestRecord
    index: int


class SocketSession:
    def __init__(self, sim: Host, log: ConnectionLog, plan: FaultPlan, send: Send) -> None:
        self.sim, self.log, self.plan, self._send = sim, log, plan, send
        self.config = sim.config
        self.cache = ConnectionCache()
        self.named_lanes: set[str] = set()
        self.queues: dict[str | None, asyncio.Queue[Queued]] = {}
        self.workers: dict[str | None, asyncio.Task[None]] = {}
        self.slots = asyncio.Semaphore(self.config.max_in_flight)
        self.active: dict[str, Turn] = {}
        self.creates = 0
        self.sends = 0
        max_age = plan.max_age_s if plan.max_age_s is not None else self.config.max_age_s
        self.max_age = max_age
        self.deadline = time.monotonic() + max_age
        self.expired = False
        self.done = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.rng = random.Random(f"{self.config.seed}:{log.id}")

    # -- lifecycle ---------------------------------------------------------------------------

    async def serve(self, receive: Receive) -> None:
        watchdog = asyncio.create_task(self._age_watchdog())
        reader = asyncio.create_task(self._read(receive))
        try:
            await self.done.wait()
        finally:
            for task in (watchdog, reader, *self.workers.values()):
                task.cancel()
            for task in (watchdog, reader, *self.workers.values()):
                with contextlib.suppress(asyncio.CancelledError, Closed):
                    await task
            self.log.closed = True

    async def _read(self, receive: Receive) -> None:
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    self._finish(f"client closed ({message.get('code', 1005)})")
                    return
                await self.on_frame(message.get("text"), message.get("bytes"))
        except Closed:
            return

    def _finish(self, reason: str) -> None:
        if not self.done.is_set():
            self.log.close_reason = reason
            self.done.set()

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self._send({"type": "websocket.close", "code": code})
        self._finish(reason)
        raise Closed(reason)

    def drop(self, reason: str) -> None:
        """End without a close frame: returning from the app makes the server cut the TCP link."""
        self._finish(reason)
        raise Closed(reason)

    # -- frames ------------------------------------------------------------------------------

    async def on_frame(self, text: str | None, data: bytes | None) -> None:
        size = len(data) if data is not None else len((text or "").encode())
        try:
            frame = read_frame(text, data, size, self.config.max_frame_bytes)
        except FrameRefused as refused:
            self.log.frame(refused.kind, size)
            await self.error(refused.error)
            return
        self.log.frame(frame["type"], size)
        if frame["type"] == "response.create":
            await self.on_create(frame, size)
        elif frame["type"] == "response.steer":
            await self.on_steer(frame)
        else:
            message = (
                f"Unknown event type '{frame['type']}'; expected response.create or response.steer."
            )
            await self.error(RequestError.invalid("type", message, "unknown_event_type"))

    async def on_create(self, frame: dict[str, Any], size: int) -> None:
        self.creates += 1
        index = self.creates
        if self.plan.close_after_recv == index:
            self.drop(f"fault: close_after_recv={index}")
        fields = {k: v for k, v in frame.items() if k != "type"}
        try:
            request = parse_create(fields, "websocket", self.config, size)
            claim_lane(self.named_lanes, request.stream_id, self.config.max_named_lanes)
        except RequestError as exc:
            await self.error(
                exc, valid_stream_id(frame) if exc.code != "invalid_stream_id" else None
            )
            return
        if self.expired or time.monotonic() >= self.deadline:
            await self._age_out()
        record = RequestRecord(
            index,
            self.log.now_ms(),
            size,
            mode_of(request),
            request.previous_response_id,
            request.stream_id,
        )
        self.log.requests.append(record)
        self._queue(request.stream_id).put_nowait(Queued(request, record, index))

    def _queue(self, lane: str | None) -> asyncio.Queue[Queued]:
        if lane not in self.queues:
            self.queues[lane] = asyncio.Queue()
            self.workers[lane] = asyncio.create_task(self._lane_worker(lane))
        return self.queues[lane]

    async def _lane_worker(self, lane: str | None) -> None:
        queue = self.queues[lane]
        try:
            while True:
                queued = await queue.get()
                async with self.slots:
                    self.idle.clear()
                    try:
                        await self.run(queued)
                    finally:
                        if not self.active:
                            self.idle.set()
        except Closed:
            return

    async def on_steer(self, frame: dict[str, Any]) -> None:
        target = frame.get("previous_response_id")
        turn = self.active.get(target) if isinstance(target, str) else None
        known = isinstance(target, str) and (self.cache.holds(target) or self.sim.store.get(target))
        event = steer_failed(frame, running=turn is not None, known=bool(known))
        if turn is not None and turn.lane is not None:
            event["stream_id"] = turn.lane
        await self.send_json(event)

    # -- one response ------------------------------------------------------------------------

    async def run(self, queued: Queued) -> None:
        request, record, index = queued.request, queued.record, queued.index
        lane = request.stream_id
        if index in self.plan.forget_cache_before:
            self.cache.clear()
        if self.plan.connection_limit_at == index:
            record.status = "error:websocket_connection_limit_reached"
            await self._age_out()
        try:
            record.cache = "miss" if request.previous_response_id else "none"  # if lookup raises
            parent, cache = self._lookup(request)
            record.cache = cache
            code = self.plan.error_at(index, self.rng)
            if code is not None:
                shape: Shape = self.plan.error_frames.get(index, (code, "nested"))[1]
                raise _Injected(injected(code), shape)
            resolved = Resolved.build(request, parent, cache)
        except (RequestError, _Injected) as exc:
            error, shape = (exc.error, exc.shape) if isinstance(exc, _Injected) else (exc, "nested")
            record.status = f"error:{error.code}"
            self._evict_after_failure(request)
            await self.error(error, lane, shape)
            record.done_ms = self.log.now_ms()
            return
        turn = Turn(
            request,
            resolved,
            self.config.costs,
            self.config.seed,
            lane,
            fail_with=self.plan.response_failed.get(index),
            hydrate=cache == "hydrated",
        )
        await self._stream(turn, record, index)

    def _lookup(self, request: CreateRequest) -> tuple[ResponseRecord | None, Any]:
        store = self.sim.store if request.store else None
        try:
            return self.cache.parent(request.previous_response_id, store)
        except LookupError:
            raise RequestError.not_found(str(request.previous_response_id)) from None

    def _evict_after_failure(self, request: CreateRequest) -> None:
        self.cache.evict_after_failure(request.stream_id, request.previous_response_id)

    async def _stream(self, turn: Turn, record: RequestRecord, index: int) -> None:
        record.response_id = turn.id
        record.input_tokens, record.cached_tokens = (
            turn.resolved.input_tokens,
            turn.resolved.cached_tokens,
        )
        record.context_hash, record.context_items = turn.context_hash, len(turn.resolved.context)
        self.active[turn.id] = turn
        sent = 0
        try:
            async for event in turn.events():
                if event["type"] in TERMINAL:
                    self._settle(turn, record)
                    if index in self.plan.oversize_frames:
                        event["x_sim_padding"] = "x" * self.plan.oversize_frames[index]
                if sent == 0:
                    record.first_event_ms = self.log.now_ms()
                    for junk in junk_frames(self.plan, index):
                        await self._send(junk)
                if record.first_token_ms is None and "delta" in event:
                    record.first_token_ms = self.log.now_ms()
                at = time.monotonic()
                await self.send_json(event, turn.lane)
                self.log.sent(index, event, at)
                sent += 1
                await self._event_faults(index, sent)
        finally:
            self.active.pop(turn.id, None)
            if record.status in ("queued", "in_progress"):  # cut off before its terminal event
                record.status, record.output_tokens = "interrupted", turn.output_tokens
                record.done_ms = self.log.now_ms()

    def _settle(self, turn: Turn, record: RequestRecord) -> None:
        """Cache and store a finished response, or evict its parent if it failed."""
        # Before the terminal event goes out, so a client that reads the log next sees it whole.
        record.status, record.output_tokens = turn.status, turn.output_tokens
        record.done_ms = self.log.now_ms()
        upgrade = self.config.costs.handshake_ms if record.index == 1 else 0.0
        record.charged_ms = turn.charged_ms + upgrade
        if turn.record is None:
            self._evict_after_failure(turn.request)
            return
        self.cache.keep(turn.record)
        if turn.request.store:
            self.sim.store.put(turn.record)
        entry = OracleEntry(
            turn.id,
            self.log.id,
            turn.context_hash,
            len(turn.resolved.context),
            record.mode,
            record.cache,
        )
        self.sim.introspection.record(entry)

    async def _event_faults(self, index: int, sent: int) -> None:
        plan = self.plan
        if _due(plan.stall_after_events, index, sent):
            assert plan.stall_after_events is not None
            stall_ms = plan.stall_after_events.value
            if stall_ms is None:
                await self.done.wait()
            else:
                await asyncio.sleep(stall_ms / 1000.0)
        if _due(plan.close_after_events, index, sent):
            assert plan.close_after_events is not None
            await self.close(
                plan.close_after_events.value or 1000, f"fault: close_after_events={sent}"
            )
        if _due(plan.drop_after_events, index, sent):
            self.drop(f"fault: drop_after_events={sent}")

    # -- age limit ---------------------------------------------------------------------------

    async def _age_watchdog(self) -> None:
        await asyncio.sleep(max(self.deadline - time.monotonic(), 0.0))
        self.expired = True
        if not self.config.enforce_age_mid_stream:
            await self.idle.wait()
        with contextlib.suppress(Closed):
            await self._age_out()

    async def _age_out(self) -> None:
        self.expired = True
        await self.error(RequestError.connection_limit(self.max_age))
        await self.close(self.config.age_close_code, "max connection age reached")

    # -- sending -----------------------------------------------------------------------------

    async def error(
        self, error: RequestError, lane: str | None = None, shape: Shape = "nested"
    ) -> None:
        await self.send_json(error.ws_event(lane, shape))

    async def send_json(self, event: Event, lane: str | None = None) -> None:
        if lane is not None:
            event["stream_id"] = lane
        if self.done.is_set():
            raise Closed(self.log.close_reason)
        text = json.dumps(event, separators=(",", ":"))
        try:
            await self._send({"type": "websocket.send", "text": text})
        except OSError as exc:  # the client went away mid-send (uvicorn's ClientDisconnected)
            self._finish("client disconnected")
            raise Closed("client disconnected") from exc
        self.log.events_sent += 1
        self.sends += 1
        if self.sends % YIELD_EVERY == 0:
            await asyncio.sleep(0)


@dataclass
class _Injected(Exception):
    error: RequestError
    shape: Shape


def _due(fault: EventFault | None, index: int, sent: int) -> bool:
    return fault is not None and fault.due(index, sent)
