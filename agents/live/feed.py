"""A session's live feed: every run event numbered, kept until it is durable, fanned out.

Sockets in the runner's process get each event at once (the fast path). The feed keeps the
in-flight log: the events since the last checkpoint, the position below which every item is in
the database. A tab that (re)connects renders the database below the checkpoint, then the log,
then follows live, so it shows exactly the server's transcript whenever it arrives.

With Redis, the events also go, coalesced into at most one batch per ``FANOUT_INTERVAL_MS``, to
a Redis Stream (the log that tabs on other processes resume from) and to the session's
channel-layer group (the tabs on other processes): never one message per token. Each write
checks the runner's lease in the same script, so a runner that lost its session cannot write
the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

from channels.layers import get_channel_layer
from django.conf import settings

from agents.live import wire
from agents.live.lease import lease_key
from agents.live.store import KEY_PREFIX, redis_client
from agents.metrics import FANOUT_BATCH_SECONDS
from agents.run.events import Listener, Notice, RunEvent, TextDelta, decode, encode

log = logging.getLogger(__name__)

# The log lives a day after its last write, like the rest of a session's hot state.
LOG_TTL_MS = 24 * 3600 * 1000

WRITE_BATCH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('XADD', KEYS[2], ARGV[2], 'events', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
"""
# A checkpoint drops the batches that hold only events below it; a batch that straddles it
# stays, and readers skip its older events by sequence number.
WRITE_HEAD = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[3], 'head', ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
if ARGV[5] == '1' then redis.call('DEL', KEYS[2]) end
redis.call('XTRIM', KEYS[2], 'MINID', ARGV[3])
return 1
"""
READ = """
return {redis.call('HGET', KEYS[1], 'head'), redis.call('XRANGE', KEYS[2], '-', '+')}
"""


def log_key(session_id: str) -> str:
    return f"{KEY_PREFIX}{session_id}:log"


def head_key(session_id: str) -> str:
    return f"{KEY_PREFIX}{session_id}:head"


@dataclass
class Head:
    """Where the log starts: items below ``base`` are in the database; events up to ``seq``
    are accounted for by them."""

    epoch: str  # the runner's fencing token: a new runner is a new epoch
    base: int
    seq: int
    running: bool
    turn: int | None  # the running turn's user message position
    # The running turn's first new position: a regenerate's older replies to ``turn`` lie
    # between the two and are not on the branch being run (agents/run/tree.py).
    start: int | None = None
    rev: int = 0  # counts the epoch's branch switches: a transcript kept for another is stale

    def dumps(self) -> str:
        fields = [self.epoch, self.base, self.seq, self.running, self.turn, self.start, self.rev]
        return json.dumps(fields)

    @classmethod
    def loads(cls, text: str) -> Head:
        epoch, base, seq, running, turn, *rest = json.loads(text)
        start, rev = [*rest, None, 0][:2]
        return cls(str(epoch), int(base), int(seq), bool(running), turn, start, int(rev or 0))


@dataclass
class Snapshot:
    head: Head | None  # None: the log is gone; render the database as it is
    events: list[tuple[int, RunEvent]] = field(default_factory=list)

    @property
    def seq(self) -> int:
        if self.events:
            return self.events[-1][0]
        return self.head.seq if self.head else 0


@dataclass
class Entry:
    seq: int
    event: RunEvent
    parts: list[str] | None = None  # a text delta's coalesced pieces

    def merged(self) -> RunEvent:
        if self.parts is None:
            return self.event
        assert isinstance(self.event, TextDelta)
        return TextDelta(self.event.key, "".join(self.parts))


def _append(entries: list[Entry], seq: int, event: RunEvent) -> None:
    """Append, merging a text delta into the previous one for the same element."""
    if isinstance(event, TextDelta) and entries:
        last = entries[-1]
        if isinstance(last.event, TextDelta) and last.event.key == event.key:
            if last.parts is None:
                last.parts = [last.event.text]
            last.parts.append(event.text)
            last.seq = seq
            return
    entries.append(Entry(seq, event))


class Feed:
    def __init__(self, session_id: str, head: Head, holder: str | None = None) -> None:
        self.session_id = session_id
        self.head = head
        self.seq = head.seq
        self.listeners: set[Listener] = set()
        self.log: list[Entry] = []
        self.relay = Relay(session_id, holder) if holder is not None else None

    @property
    def epoch(self) -> str:
        return self.head.epoch

    def publish(self, event: RunEvent) -> None:
        self.seq += 1
        if not isinstance(event, Notice):  # a notice is of the moment; a resync skips it
            _append(self.log, self.seq, event)
        for listener in list(self.listeners):
            listener.deliver(event)
        if self.relay is not None:
            self.relay.push(self.seq, event)

    def checkpoint(
        self,
        base: int,
        seq: int,
        running: bool,
        turn: int | None = None,
        start: int | None = None,
        rebranched: bool = False,
    ) -> None:
        """Items below ``base`` are durable and account for the events up to ``seq``; a
        ``rebranched`` checkpoint follows a change of the session's branch."""
        if running and start is None and self.head.running:
            turn, start = self.head.turn, self.head.start  # the same run goes on
        rev = self.head.rev + 1 if rebranched else self.head.rev
        self.head = Head(self.head.epoch, base, seq, running, turn, start, rev)
        self.log = [entry for entry in self.log if entry.seq > seq]
        if self.relay is not None:
            self.relay.push_head(self.head)

    def snapshot(self) -> Snapshot:
        """The head and the log, as of now (synchronous: no event can slip in between)."""
        events = [(entry.seq, entry.merged()) for entry in self.log]
        head = Head(**vars(self.head))
        return Snapshot(head, events)

    async def start(self, on_lost: Callable[[], None]) -> None:
        if self.relay is not None:
            await self.relay.start(self.head, on_lost)

    async def close(self) -> None:
        if self.relay is not None:
            await self.relay.close()


class Relay:
    """The feed's Redis side: the log's Stream and the batches for the other processes."""

    def __init__(self, session_id: str, holder: str) -> None:
        self.session_id = session_id
        self.holder = holder
        self.epoch = ""
        self.flushed = 0  # the last sequence number sent
        # In order: event lists (coalesced as they come) and heads.
        self._ops: list[list[Entry] | Head] = []
        self._since: float | None = None  # when the oldest event not yet sent came (monotonic)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._on_lost: Callable[[], None] = lambda: None

    async def start(self, head: Head, on_lost: Callable[[], None]) -> None:
        """A new runner: replace whatever log an earlier one left (after reading it)."""
        self.epoch = head.epoch
        self.flushed = head.seq
        self._on_lost = on_lost
        await self._write_head(head, reset=True)
        self._task = asyncio.create_task(self._flush_forever())

    def push(self, seq: int, event: RunEvent) -> None:
        if not self._ops or isinstance(self._ops[-1], Head):
            self._ops.append([])
            if self._since is None:  # per batch, not per delta
                self._since = time.monotonic()
        batch = self._ops[-1]
        assert isinstance(batch, list)
        _append(batch, seq, event)
        self._wake.set()

    def push_head(self, head: Head) -> None:
        self._ops.append(Head(**vars(head)))
        self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            await self._flush()  # the last events (a run's end) reach the other processes

    async def _flush_forever(self) -> None:
        """At most one batch per ``FANOUT_INTERVAL_MS``: the first event after a quiet spell
        goes at once, later ones wait for the interval to end, so a tab elsewhere waits at
        most the interval and Redis gets a bounded number of messages, however fast the
        tokens come."""
        loop = asyncio.get_running_loop()
        interval = settings.FANOUT_INTERVAL_MS / 1000
        last = -interval
        while True:
            await self._wake.wait()
            wait = last + interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._wake.clear()
            last = loop.time()
            await self._flush()

    async def _flush(self) -> None:
        ops, self._ops = self._ops, []
        since, self._since = self._since, None
        for op in ops:
            try:
                if isinstance(op, Head):
                    written = await self._write_head(op)
                else:
                    written = await self._write_batch(op)
            except Exception as exc:  # Redis is away: the other processes' tabs resync later
                log.warning("Could not relay session %s: %s", self.session_id, exc)
                continue
            if not written:
                self._on_lost()
                return
        if since is not None:
            FANOUT_BATCH_SECONDS.observe(time.monotonic() - since)

    async def _write_batch(self, entries: list[Entry]) -> bool:
        after, self.flushed = self.flushed, entries[-1].seq
        events = [(entry.seq, encode(entry.merged())) for entry in entries]
        keys = (lease_key(self.session_id), log_key(self.session_id))
        payload = json.dumps(events)
        stream_id = f"{self.flushed}-0"
        redis = redis_client()
        written = await redis.eval(
            WRITE_BATCH, 2, *keys, self.holder, stream_id, payload, LOG_TTL_MS
        )
        if not written:
            return False
        message: wire.FeedBatch = {
            "type": wire.FEED_BATCH,
            "epoch": self.epoch,
            "after": after,
            "events": events,
        }
        layer = get_channel_layer()
        assert layer is not None
        await layer.group_send(wire.feed_group(self.session_id), dict(message))
        return True

    async def _write_head(self, head: Head, reset: bool = False) -> bool:
        keys = (lease_key(self.session_id), log_key(self.session_id), head_key(self.session_id))
        redis = redis_client()
        args = (self.holder, head.dumps(), f"{head.seq + 1}-0", LOG_TTL_MS, "1" if reset else "0")
        return bool(await redis.eval(WRITE_HEAD, 3, *keys, *args))


async def read_log(session_id: str) -> Snapshot:
    """The feed as the Redis log has it (for a tab on a process that does not run the session)."""
    redis = redis_client()
    head_text, entries = await redis.eval(READ, 2, head_key(session_id), log_key(session_id))
    if not head_text:
        return Snapshot(None)
    head = Head.loads(head_text)
    # Merged as the owner's own log is: a reply's deltas replay as one fragment, not thousands.
    log: list[Entry] = []
    for _, fields in entries:
        values = dict(zip(fields[::2], fields[1::2], strict=True))
        for seq, data in json.loads(values["events"]):
            event = decode(data)
            # As in the owner's own log: a notice is of the moment; a resync skips it.
            if seq > head.seq and not isinstance(event, Notice):
                _append(log, seq, event)
    return Snapshot(head, [(entry.seq, entry.merged()) for entry in log])


def batch_events(message: wire.FeedBatch) -> list[tuple[int, RunEvent]]:
    return [(int(seq), decode(data)) for seq, data in message["events"]]
