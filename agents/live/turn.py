"""One turn of a session: the user's message made durable, the agent loop, the end announced.

The message is in the database before anything goes upstream, and everything of the run is in
the database before its end is announced (invariant 5 in docs/architecture.md).
"""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import Protocol

from agents.live.feed import Feed
from agents.live.people import WaitingCalls
from agents.live.store import context_store
from agents.models import DEFAULT_TITLE, Session, title_from_message
from agents.run import transcript
from agents.run.events import ItemAdded, Retitled, TurnEnded, TurnStarted
from agents.run.host import RunHost
from agents.run.loop import AgentLoop
from agents.run.writes import Fenced, WriteBehind
from agents.upstream.transports import Transports

log = logging.getLogger(__name__)

FAILED = "The run failed unexpectedly; the transcript is kept. Try again."


class TurnHost(RunHost, Protocol):
    session_id: str
    feed: Feed
    transports: Transports
    calls: WaitingCalls

    def writes(self) -> WriteBehind: ...


async def run_turn(host: TurnHost, text: str) -> None:
    sid = host.session_id
    status, message = "failed", ""
    loop: AgentLoop | None = None
    writes = host.writes()
    base = host.feed.head.base
    try:
        session = await Session.objects.aget(pk=sid)
        host.transports.choose(http=session.transport == "http")
        position = await transcript.next_position(sid)
        # Calls a failed run left unanswered get an error output first (issue 11, item 4).
        for repair in await transcript.answer_unanswered_calls(session, position):
            writes.submit(repair.save)
            host.publish(ItemAdded(repair))
            position += 1
        user_item = transcript.new_item(session, position, transcript.user_message(text))
        writes.submit(user_item.save)
        retitled = _retitle(writes, session, position, text)
        await writes.flush()  # the message is durable before anything goes upstream
        base = position + 1
        with suppress(Exception):
            await context_store().update(sid, running="1")
        host.publish(TurnStarted(user_item))
        if retitled:
            host.publish(Retitled(sid, retitled[0], session.pinned))
        host.feed.checkpoint(base, host.feed.seq, running=True, turn=position)
        loop = AgentLoop(host, session, position, writes)
        try:
            status, message = await loop.run()
        finally:
            base = loop.position
            # Everything of the run is in the database before its end is announced.
            await writes.flush()
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
        host.feed.checkpoint(base, host.feed.seq, running=False)


def _retitle(writes: WriteBehind, session: Session, position: int, text: str) -> list[str]:
    """A session still titled by default takes its first message's start as its title, in the
    message's own transaction: one UPDATE, once per session, that a rename made in between
    wins over. The list gets the title once it is saved."""
    saved: list[str] = []
    title = title_from_message(text)
    if position != 0 or session.title != DEFAULT_TITLE or not title:
        return saved

    def write() -> None:
        if Session.objects.filter(pk=session.pk, title=DEFAULT_TITLE).update(title=title):
            saved.append(title)

    writes.submit(write)
    return saved
