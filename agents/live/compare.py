"""A compare's run: one prompt through 2-4 configurations at once, each column a branch.

Each round gives every column a copy of the prompt (siblings after the compare's fork point) and
runs the columns' agent loops concurrently, each with its configuration (model, instructions,
tools, store, max steps) and a transport of its own (agents/upstream/transports.py): the same
simulator, tools and prompt for all, so a race between transports is honest. The columns share
the session's stop signal, its write-behind and one position counter.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol

from django.db.models import Max

from agents.live.feed import Feed
from agents.live.people import WaitingCalls
from agents.live.store import context_store
from agents.models import Column, Compare, Item, Lap, Session
from agents.run import transcript, tree
from agents.run.events import Compared, Notice, Rebranched, RunEvent, TurnEnded
from agents.run.host import RunHost
from agents.run.loop import AgentLoop
from agents.run.placement import Lane, Positions
from agents.run.stop import StopSignal
from agents.run.writes import Fenced, WriteBehind
from agents.upstream.delta import Item as ItemData
from agents.upstream.http import HttpUpstream
from agents.upstream.transports import Transports
from agents.upstream.websocket import UpstreamSession

log = logging.getLogger(__name__)

MAX_ROUNDS = 5  # "Run 5 times": what one command may ask for


class CompareHost(RunHost, Protocol):
    session_id: str
    feed: Feed
    transports: Transports
    calls: WaitingCalls

    def writes(self) -> WriteBehind: ...


@dataclass
class ColumnHost:
    """A column's host: the session's, but with a transport of its own (agents/run/host.py)."""

    runner: CompareHost
    transport: UpstreamSession | HttpUpstream
    stop: StopSignal  # the session's: a stop ends every column

    def publish(self, event: RunEvent) -> None:
        self.runner.publish(event)

    async def ask(self, call: ItemData, kind: str) -> str:
        return await self.runner.ask(call, kind)

    def checkpoint(self, writes: WriteBehind, base: int) -> None:
        self.runner.checkpoint(writes, base)

    def fall_back(self, reason: str) -> None:
        self.transport.discard()
        self.transport = self.runner.transports.column(http=True)
        self.runner.publish(Notice(f"A column switched to HTTP: {reason}."))

    async def rotate_if_due(
        self, fields: dict[str, Any], context: list[ItemData], lane: str | None = None
    ) -> bool:
        return False  # a column's socket lives for one round


def column_session(session: Session, column: Column) -> Session:
    """The session as the column runs it: its records still belong to the session."""
    configured = copy.copy(session)
    configured.model, configured.instructions = column.model, column.instructions
    configured.store, configured.transport = column.store, column.transport
    configured.max_steps = column.max_steps
    return configured


async def run_compare(host: CompareHost, compare_id: int, rounds: int) -> None:
    sid = host.session_id
    status, message = "failed", ""
    writes = host.writes()
    base = host.feed.head.base
    try:
        compare = await Compare.objects.select_related("session").aget(
            pk=compare_id, session_id=sid
        )
        columns = [column async for column in compare.columns.all()]
        with suppress(Exception):
            await context_store().update(sid, running="1")
        done = await Lap.objects.filter(column__compare=compare).aaggregate(top=Max("round"))
        first = (done["top"] or 0) + 1
        for number in range(first, first + rounds):
            if host.stop.halted():
                break
            status, message, base = await _round(host, writes, compare, columns, number)
            if status == "stopped":
                break
    except Fenced:
        status, message = "interrupted", "The session moved to another server."
    except Exception:
        log.exception("Compare %s of session %s failed", compare_id, sid)
        message = "The compare failed unexpectedly; what ran is kept. Try again."
    finally:
        host.calls.cancel_all()
        await host.transports.close_columns()
        with suppress(Exception):
            await context_store().update(sid, running="")
        # The runs' charts are the compare's (Compared); the session's tabs redraw the branch.
        host.publish(TurnEnded(status, message))
        host.feed.checkpoint(base, host.feed.seq, running=False, rebranched=True)
        host.publish(Rebranched())


async def _round(
    host: CompareHost,
    writes: WriteBehind,
    compare: Compare,
    columns: list[Column],
    number: int,
) -> tuple[str, str, int]:
    """One round: every column's message, then their loops at once; its result published."""
    session = compare.session
    links = Item.objects.filter(session=session).values_list("position", "parent")
    before = tree.branch([link async for link in links], compare.after).path
    if compare.after is not None and compare.after in before:
        before = before[: before.index(compare.after) + 1]
    else:
        before = ()
    positions = Positions(await transcript.next_position(session.pk))
    users: list[Item] = []
    for column in columns:
        data = transcript.user_message(compare.prompt)
        user = transcript.new_item(session, positions.take(), data, parent=compare.after)
        writes.submit(user.save)
        writes.submit(Lap(column=column, round=number, message=user.position).save)
        users.append(user)
    head = users[0].position
    writes.submit(lambda: Session.objects.filter(pk=session.pk).update(head=head))
    await writes.flush()
    host.feed.checkpoint(positions.next, host.feed.seq, running=True, rebranched=True)
    host.publish(Rebranched())
    loops = []
    for index, (column, user) in enumerate(zip(columns, users, strict=True)):
        transport = host.transports.column(http=column.transport == "http")
        lane = Lane(path=(*before, user.position), column=index, tools=tuple(column.tools))
        loops.append(
            AgentLoop(
                ColumnHost(host, transport, host.stop),
                column_session(session, column),
                user.position,
                writes,
                positions=positions,
                route=lane,
            )
        )
    outcomes = await asyncio.gather(*(loop.run() for loop in loops), return_exceptions=True)
    await writes.flush()
    statuses = [o[0] if isinstance(o, tuple) else "failed" for o in outcomes]
    for user, state in zip(users, statuses, strict=True):
        writes.submit(_lap_status(compare, user.position, state))
    await writes.flush()
    host.feed.checkpoint(positions.next, host.feed.seq, running=True, rebranched=True)
    host.publish(Compared(compare.pk, number))
    status = "stopped" if "stopped" in statuses else "completed"
    failed = [c.label for c, s in zip(columns, statuses, strict=True) if s not in ("completed",)]
    message = f"Round {number}: {', '.join(failed)} ended {status}." if failed else ""
    return status, message, positions.next


def _lap_status(compare: Compare, message: int, status: str) -> Callable[[], object]:
    return lambda: Lap.objects.filter(column__compare=compare, message=message).update(
        status=status
    )
