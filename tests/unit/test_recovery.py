"""Recovery: what a dead owner's log holds is written to the database, as interrupted."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async

from agents.live.feed import Head, Snapshot
from agents.live.recovery import INTERRUPTED_CALL, recover
from agents.live.store import context_store
from agents.models import Item, Session
from agents.run import transcript
from agents.run.events import ItemAdded, ItemDone, ItemStarted, Notice, RunEvent, TextDelta
from agents.run.writes import Fenced, WriteBehind

pytestmark = [pytest.mark.unit, pytest.mark.django_db(transaction=True)]


def call(call_id: str, position: int) -> Item:
    data = {"type": "function_call", "call_id": call_id, "name": "lookup", "arguments": "{}"}
    return Item(position=position, data=data)


def output(call_id: str, position: int) -> Item:
    data = {"type": "function_call_output", "call_id": call_id, "output": "found"}
    return Item(position=position, data=data)


async def new_session() -> Session:
    """A session whose run started: the user's message (0) is durable, the log begins at 1."""
    session = await Session.objects.acreate(model="sim")
    await transcript.append(session, 0, transcript.user_message("/research 2 tides"))
    return session


def left(events: list[RunEvent], running: bool = True) -> Snapshot:
    head = Head("1", base=1, seq=0, running=running, turn=0)
    return Snapshot(head, list(enumerate(events, start=1)))


async def rows(session: Session) -> list[tuple[int, str, str, bool, Any]]:
    found = Item.objects.filter(session=session).order_by("position")
    return [(i.position, i.kind, i.status, i.in_context, i.data) async for i in found]


async def test_a_dead_owner_s_run_is_finished_as_interrupted() -> None:
    session = await new_session()
    sid = str(session.pk)
    await context_store().update(sid, running="1")
    log = left(
        [
            ItemStarted("fc_1", "function_call", "lookup"),
            TextDelta("fc_1", "{}"),
            ItemDone("fc_1", call("c1", 1)),  # completed in the log, never written
            ItemStarted("fc_2", "function_call", "lookup"),
            ItemDone("fc_2", call("c2", 2)),
            ItemAdded(output("c2", 3)),  # c2 was answered; c1 was not
            ItemStarted("msg_1", "message", "assistant"),
            TextDelta("msg_1", "The tides "),
            Notice("a notice is not an item"),
            TextDelta("msg_1", "are"),
            ItemStarted("fc_3", "function_call", "search"),
            TextDelta("fc_3", '{"q": '),
        ]
    )

    base = await recover(sid, log, WriteBehind(sid, session.fence))

    found = await rows(session)
    assert [(p, kind, status, usable) for p, kind, status, usable, _ in found] == [
        (0, "message", "completed", True),
        (1, "function_call", "completed", True),
        (2, "function_call", "completed", True),
        (3, "function_call_output", "completed", True),
        (4, "function_call_output", "completed", True),  # c1's error output
        (5, "message", "interrupted", True),  # the partial reply stays in the context
        (6, "function_call", "interrupted", False),  # an unfinished call cannot go upstream
    ]
    assert found[4][4] == {
        "type": "function_call_output",
        "call_id": "c1",
        "output": INTERRUPTED_CALL,
    }
    assert found[5][4]["content"] == [{"type": "output_text", "text": "The tides are"}]
    assert found[6][4]["name"] == "search"
    assert found[6][4]["arguments"] == '{"q": '
    assert base == 7
    assert (await context_store().get(sid))["running"] == ""
    # The transcript is valid upstream: every call in the context has exactly one output.
    assert (await sync_to_async(transcript.read_now)(session)).unanswered == []


async def test_items_already_in_the_database_are_not_written_twice() -> None:
    session = await new_session()
    sid = str(session.pk)
    written = await transcript.append(session, 1, call("c1", 1).data)
    log = left([ItemStarted("fc_1", "function_call", "lookup"), ItemDone("fc_1", call("c1", 1))])

    base = await recover(sid, log, WriteBehind(sid, session.fence))

    found = await rows(session)
    assert [(p, kind) for p, kind, *_ in found] == [
        (0, "message"),
        (1, "function_call"),
        (2, "function_call_output"),
    ]
    assert (await Item.objects.aget(session=session, position=1)).pk == written.pk
    assert base == 3


async def test_an_empty_streamed_reply_is_kept_out_of_the_context() -> None:
    session = await new_session()
    sid = str(session.pk)
    log = left([ItemStarted("msg_1", "message", "assistant")])

    assert await recover(sid, log, WriteBehind(sid, session.fence)) == 2

    (_, _, status, usable, _) = (await rows(session))[1]
    assert (status, usable) == ("interrupted", False)


@pytest.mark.parametrize("snapshot", [None, Snapshot(None), "finished"])
async def test_without_a_running_log_there_is_nothing_to_recover(snapshot: Any) -> None:
    session = await new_session()
    sid = str(session.pk)
    if snapshot == "finished":  # the run had ended: its items are all in the database
        snapshot = left([ItemStarted("msg_1", "message", "assistant")], running=False)

    assert await recover(sid, snapshot, WriteBehind(sid, session.fence)) == 1
    assert await recover(sid, snapshot, WriteBehind(sid, session.fence), base=9) == 9
    assert len(await rows(session)) == 1


async def test_a_fenced_recovery_writes_nothing() -> None:
    session = await new_session()
    sid = str(session.pk)
    log = left([ItemStarted("msg_1", "message", "assistant"), TextDelta("msg_1", "x")])
    stale = WriteBehind(sid, session.fence - 1 if session.fence else session.fence + 1)

    with pytest.raises(Fenced):
        await recover(sid, log, stale)
    assert len(await rows(session)) == 1
