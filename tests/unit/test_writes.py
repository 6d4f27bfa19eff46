"""Write-behind: records written in order, in few transactions, fenced; callbacks after."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from agents.models import Item, Session
from agents.run import transcript
from agents.run.writes import Fenced, WriteBehind

pytestmark = [pytest.mark.unit, pytest.mark.django_db(transaction=True)]


async def positions(session: Session) -> list[int]:
    rows = Item.objects.filter(session=session).order_by("position")
    return [item.position async for item in rows]


def message(session: Session, position: int) -> Item:
    return transcript.new_item(session, position, transcript.user_message(f"m{position}"))


async def test_writes_run_in_order_and_callbacks_after_what_was_queued_before_them() -> None:
    session = await Session.objects.acreate(model="sim")
    writes = WriteBehind(str(session.pk), session.fence)
    log: list[str] = []

    def write(name: str) -> None:
        log.append(name)

    for name in ("a", "b"):
        writes.submit(lambda name=name: write(name))  # type: ignore[misc]
    writes.then(lambda: log.append("after b"))
    writes.submit(lambda: write("c"))
    writes.then(lambda: log.append("after c"))
    assert log == []  # queued, not run: submit never waits

    await writes.flush()

    # One batch (all was queued before it started): its writes in order, then its callbacks.
    assert log == ["a", "b", "c", "after b", "after c"]


async def test_what_queues_during_a_batch_commits_after_it_in_one_transaction() -> None:
    session = await Session.objects.acreate(model="sim")
    writes = WriteBehind(str(session.pk))
    started, release = threading.Event(), threading.Event()
    committed: list[str] = []
    seen: list[tuple[str, int]] = []  # each write, and how many commits preceded it
    called: list[int] = []

    def write(name: str, item: Item | None = None) -> None:
        seen.append((name, len(committed)))
        if item is not None:
            item.save()
        transaction.on_commit(lambda: committed.append(name))

    def slow() -> None:
        write("first")
        started.set()
        release.wait(5)

    writes.submit(slow)
    await asyncio.to_thread(started.wait, 5)
    for position in range(3):  # queued while the first batch commits
        item = message(session, position)
        writes.submit(lambda name=f"m{position}", item=item: write(name, item))  # type: ignore[misc]
    writes.then(lambda: called.append(len(committed)))
    release.set()
    await writes.flush()

    assert seen == [("first", 0), ("m0", 1), ("m1", 1), ("m2", 1)]
    assert committed == ["first", "m0", "m1", "m2"]
    assert called == [4]  # after the second batch committed
    assert await positions(session) == [0, 1, 2]


async def test_flush_with_nothing_queued_returns_at_once() -> None:
    writes = WriteBehind("00000000-0000-0000-0000-000000000000")
    await asyncio.wait_for(writes.flush(), 1)


async def test_a_fenced_runner_cannot_write_and_its_callbacks_never_run() -> None:
    session = await Session.objects.acreate(model="sim")
    old = WriteBehind(str(session.pk), session.fence)
    # Another process takes the session over: it raises the fence.
    await Session.objects.filter(pk=session.pk).aupdate(fence=session.fence + 1)
    called: list[str] = []

    old.submit(message(session, 0).save)
    old.then(lambda: called.append("durable"))
    with pytest.raises(Fenced):
        await old.flush()

    assert await positions(session) == []
    assert called == []
    # Later writes of the fenced runner are dropped too, and flush keeps raising.
    old.submit(message(session, 1).save)
    old.then(lambda: called.append("later"))
    with pytest.raises(Fenced):
        await old.flush()
    assert await positions(session) == []
    assert called == []


async def test_a_batch_is_one_transaction_a_failure_writes_none_of_it() -> None:
    session = await Session.objects.acreate(model="sim")
    writes = WriteBehind(str(session.pk), session.fence)
    writes.submit(message(session, 0).save)
    writes.submit(message(session, 0).save)  # the same position twice: the batch fails
    with pytest.raises(Exception, match=r"(?i)unique"):
        await writes.flush()
    assert await positions(session) == []


async def test_the_holder_of_the_current_fence_writes() -> None:
    session = await Session.objects.acreate(model="sim")
    await Session.objects.filter(pk=session.pk).aupdate(fence=5)
    writes = WriteBehind(str(session.pk), 5)
    writes.submit(message(session, 0).save)
    await writes.flush()
    assert await positions(session) == [0]
    # The fence check does not move the fence.
    fence = await sync_to_async(lambda: Session.objects.get(pk=session.pk).fence)()
    assert fence == 5


async def test_commit_now_is_fenced_and_never_overtakes_queued_writes() -> None:
    """A run's opening saves its message in the trip that reads the session (agents/live/
    turn.py): fenced like any batch, and refused while writes wait, which it would overtake."""
    session = await Session.objects.acreate(model="sim")
    writes = WriteBehind(str(session.pk), session.fence)
    await sync_to_async(writes.commit_now)([message(session, 0).save])
    assert await positions(session) == [0]

    writes.submit(message(session, 1).save)
    with pytest.raises(RuntimeError, match="queued"):
        await sync_to_async(writes.commit_now)([message(session, 2).save])
    await writes.flush()
    assert await positions(session) == [0, 1]

    await Session.objects.filter(pk=session.pk).aupdate(fence=session.fence + 1)
    with pytest.raises(Fenced):
        await sync_to_async(writes.commit_now)([message(session, 3).save])
    assert await positions(session) == [0, 1]
