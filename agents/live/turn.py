"""One turn of a session: the user's message made durable, the agent loop, the end announced.

The message is in the database before anything goes upstream, and everything of the run is in
the database before its end is announced (invariant 5 in docs/architecture.md).
"""

from __future__ import annotations

import logging
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Protocol

from agents import dbthread
from agents.live.feed import Feed
from agents.live.people import WaitingCalls
from agents.live.store import context_store
from agents.models import DEFAULT_TITLE, Item, Session, title_from_message
from agents.run import transcript, tree
from agents.run.events import ItemAdded, Notice, Rebranched, Retitled, TurnEnded, TurnStarted
from agents.run.host import RunHost
from agents.run.loop import AgentLoop
from agents.run.placement import Lane, Positions
from agents.run.steps import Loaded, tools_now
from agents.run.writes import Fenced, Write, WriteBehind
from agents.upstream.transports import Transports

log = logging.getLogger(__name__)

FAILED = "The run failed unexpectedly; the transcript is kept. Try again."


class Refused(Exception):
    """A fork that cannot start (the page showed a branch that is gone): nothing was written."""


@dataclass(frozen=True)
class Fork:
    """A run that leaves the session's branch (agents/run/tree.py): an ``edit`` sends the text as
    a sibling of the user message at ``position``; a regenerate answers that message again."""

    position: int
    edit: bool


class TurnHost(RunHost, Protocol):
    session_id: str
    feed: Feed
    transports: Transports
    calls: WaitingCalls

    def writes(self) -> WriteBehind: ...


@dataclass(frozen=True)
class Start:
    """How a run begins: the user's message, the branch before it, the next free position and
    a title the message gave the session."""

    user: Item
    before: tuple[int, ...]
    position: int
    retitled: list[str]


async def run_turn(host: TurnHost, text: str, fork: Fork | None = None) -> None:
    sid = host.session_id
    status, message = "failed", ""
    loop: AgentLoop | None = None
    writes = host.writes()
    base = host.feed.head.base
    try:
        opening = await dbthread.call(_open, sid, writes, None if fork else text)
        session = opening.session
        host.transports.choose(http=session.transport == "http")
        if opening.start is not None:  # a send: its first records are saved already
            start = opening.start
            for repair in opening.repairs:
                host.publish(ItemAdded(repair))
        else:
            assert fork is not None
            start = await _fork_start(writes, opening, text, fork)
            await writes.flush()  # the message is durable before anything goes upstream
        base = start.position
        with suppress(Exception):
            await context_store().update(sid, running="1")
        user = start.user
        if fork is None:
            host.publish(TurnStarted(user))
        if start.retitled:
            host.publish(Retitled(sid, start.retitled[0], session.pinned))
        host.feed.checkpoint(
            base, host.feed.seq, running=True, turn=user.position, start=start.position,
            rebranched=fork is not None,
        )  # fmt: skip
        if fork is not None:
            # After the checkpoint: a tab redrawing for it finds the new branch in the database.
            host.publish(Rebranched())
        # Each run on a lane of its own: its parent (the last response before it) stays cached
        # as the latest of the lane before, so an edit or a regenerate of this run is a fork
        # from a cached response too (agents/upstream/delta.py, route "lane").
        route = Lane(path=(*start.before, user.position), lane=f"r{start.position}")
        loop = AgentLoop(
            host,
            session,
            user.position,
            writes,
            positions=Positions(start.position),
            route=route,
            loaded=opening.loaded,
        )
        try:
            status, message = await loop.run()
        finally:
            base = loop.position
            # Everything of the run is in the database before its end is announced.
            await writes.flush()
    except Refused as exc:
        status, message = "failed", str(exc)
    except Exception as exc:
        if not isinstance(exc, Fenced):
            log.exception("Run of session %s failed", sid)
        status = "interrupted" if isinstance(exc, Fenced) else "failed"
        message = FAILED
    finally:
        host.calls.cancel_all()
        with suppress(Exception):
            await context_store().update(sid, running="")
        host.publish(TurnEnded(status, message, tuple(loop.steps) if loop else ()))
        host.feed.checkpoint(base, host.feed.seq, running=False, rebranched=fork is not None)
        if fork is not None:
            host.publish(Rebranched())  # the new reply shows its switcher once it exists


@dataclass(frozen=True)
class Opening:
    """What a run starts from, in one trip to the database thread (a run's first token waits
    for it): the session, its branch and the next free position; for a send, also the error
    outputs the branch's unanswered calls needed and its user message, both saved in that
    trip, and what the run reads."""

    session: Session
    branch: tree.Branch
    position: int
    repairs: list[Item] = field(default_factory=list)
    start: Start | None = None
    loaded: Loaded | None = None


def _open(session_id: str, writes: WriteBehind, text: str | None) -> Opening:
    """:class:`Opening` (synchronous: on the database thread); ``text``: a send's message. Its
    records are saved here, in one fenced transaction: the message is durable before anything
    goes upstream, one trip sooner than the write-behind would make it."""
    session = Session.objects.get(pk=session_id)
    reading = transcript.read_now(session)
    branch, position = reading.branch, reading.next_position
    if text is None:
        return Opening(session, branch, position)
    # Calls a failed run left unanswered get an error output first (issue 11, item 4).
    repairs = transcript.repairs(session, position, branch.tip, reading.unanswered)
    before = (*branch.path, *(repair.position for repair in repairs))
    position += len(repairs)
    tip = before[-1] if before else None
    user = transcript.new_item(session, position, transcript.user_message(text), parent=tip)
    retitled, retitle = _retitle(session, position, text)
    writes.commit_now([*(repair.save for repair in repairs), user.save, *retitle])
    start = Start(user, before, position + 1, retitled)
    added = [item.data for item in (*repairs, user) if item.in_context]
    loaded = Loaded(tools_now(session), [*reading.context, *added], reading.stored)
    return Opening(session, branch, reading.next_position, repairs, start, loaded)


async def _fork_start(writes: WriteBehind, opening: Opening, text: str, fork: Fork) -> Start:
    """Queue a fork's first records: the edited message (or none: a regenerate answers the
    same one again) and the session's new head; refused if the branch shown is gone."""
    session, branch, position = opening.session, opening.branch, opening.position
    target = await _turn_message(session, branch, fork)
    if target is None:
        raise Refused("That message is not on the branch shown: reload the page.")
    before = branch.path[: branch.path.index(target.position)]
    if fork.edit:
        message = transcript.user_message(text)
        user = transcript.new_item(session, position, message, parent=target.parent)
        writes.submit(user.save)
        head, position = position, position + 1
    else:
        # The new reply's first item is a sibling of the old one's: its branch is named by it.
        user, head = target, target.position
    writes.submit(lambda: Session.objects.filter(pk=session.pk).update(head=head))
    session.head = head
    return Start(user, before, position, [])


def _retitle(session: Session, position: int, text: str) -> tuple[list[str], list[Write]]:
    """A session still titled by default takes its first message's start as its title, in the
    message's own transaction: one UPDATE, once per session, that a rename made in between
    wins over. The list gets the title once the write (if any) is committed."""
    saved: list[str] = []
    title = title_from_message(text)
    if position != 0 or session.title != DEFAULT_TITLE or not title:
        return saved, []

    def write() -> None:
        if Session.objects.filter(pk=session.pk, title=DEFAULT_TITLE).update(title=title):
            saved.append(title)

    return saved, [write]


async def _turn_message(session: Session, branch: tree.Branch, fork: Fork) -> Item | None:
    """The user message a fork is about: the edited one, or the one a reply answered."""
    if fork.position not in branch.path:
        return None
    upto = branch.path[: branch.path.index(fork.position) + 1]
    if fork.edit:
        upto = upto[-1:]
    users = Item.objects.filter(
        session=session, position__in=upto, data__type="message", data__role="user"
    )
    return await users.order_by("-position").afirst()


async def switch_branch(host: TurnHost, position: int) -> None:
    """Make the branch through the item at ``position`` the session's, and redraw every tab."""
    updated = await Session.objects.filter(pk=host.session_id, items__position=position).aupdate(
        head=position
    )
    if not updated:
        host.publish(Notice("That branch is gone: reload the page."))
        return
    head = host.feed.head
    host.feed.checkpoint(head.base, host.feed.seq, running=False, rebranched=True)
    host.publish(Rebranched())
