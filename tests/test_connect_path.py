"""What each browser socket's connect costs the server, as a storm of a thousand pays it
(``bench connect-storm``, docs/benchmarks.md): the anonymous owner's socket is authorised by
one query, and sockets connect on the database thread's connection rather than each opening and
closing its own (an SQLite connection's open and close cost more than the connect's queries)."""

from __future__ import annotations

import asyncio
from typing import Any

import channels.consumer
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connection, connections

from agents import dbthread
from agents.models import Session
from playground.access import anonymously_owned, visible_sessions
from playground.feed_socket import FeedConsumer
from tests.tabs import new_browser, new_session

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("runners")]


class Recorder(FeedConsumer):
    def __init__(self) -> None:
        super().__init__()
        self.handled: list[str] = []

    async def feed_batch(self, message: Any) -> None:
        self.handled.append(message["type"])

    async def websocket_receive(self, message: Any) -> None:
        self.handled.append(message["type"])


@pytest.mark.parametrize("message_type", ["feed.batch", "websocket.receive"])
async def test_no_socket_message_costs_a_trip_to_the_database_thread(
    monkeypatch: pytest.MonkeyPatch, message_type: str
) -> None:
    """Channels makes a trip before every message to close the thread's stale connection; a tab
    acknowledges every frame it applies, so a stream paid a trip (and, with ``CONN_MAX_AGE`` 0,
    an SQLite connection's open and close) per frame. The database thread's own trips check
    the connection instead."""
    made: list[None] = []

    async def close_old_connections() -> None:
        made.append(None)

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", close_old_connections)
    before = dbthread.trips().trips
    consumer = Recorder()
    await consumer.dispatch({"type": message_type})
    assert consumer.handled == [message_type]
    assert not made
    assert dbthread.trips().trips == before


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


async def test_the_database_thread_keeps_its_connection_and_replaces_a_broken_one() -> None:
    """Persistent, where safe: the next trip reuses the connection; one the server dropped (a
    PostgreSQL restart, a failover) is replaced at the start of the next trip, not an error."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite connections are files: they never break (the PostgreSQL pass runs it)")
    first = await dbthread.call(backend_pid)
    assert await dbthread.call(backend_pid) == first
    terminated = await sync_to_async(terminate, thread_sensitive=False)(first)
    assert terminated
    await asyncio.sleep(dbthread.CHECK_EVERY)  # the thread checks its connection once a second
    second = await dbthread.call(backend_pid)
    assert second != first


def terminate(pid: int) -> bool:
    """Another connection ends the database thread's one, as a server restart would."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            return bool(cursor.fetchone()[0])
    finally:
        other.close()


async def test_an_anonymous_owner_is_known_by_the_key_alone_and_nobody_else_is() -> None:
    browser, stranger = await new_browser(), await new_browser()
    session = await new_session(browser)
    assert await _owned(str(session.pk), browser)
    assert not await _owned(str(session.pk), stranger)
    assert not await _owned(str(session.pk), None)
    assert not await _owned(str(session.pk), "")


async def test_a_signed_in_owner_is_not_an_anonymous_one_and_still_sees_the_session() -> None:
    """The fast path says False for a user's session; the full check, with the user, says True."""
    user = await User.objects.acreate_user("owner", password="x")
    browser = await new_browser()
    session = await Session.objects.acreate(owner=user, model="sim")
    assert not await _owned(str(session.pk), browser)
    assert await visible_sessions(user, browser).filter(pk=session.pk).aexists()


async def _owned(session_id: str, key: str | None) -> bool:
    return await sync_to_async(anonymously_owned)(session_id, key)
