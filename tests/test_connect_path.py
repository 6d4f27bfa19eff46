"""What each browser socket's connect costs the server, as a storm of a thousand pays it
(``bench connect-storm``, docs/benchmarks.md): the anonymous owner's socket is authorised by
one query, and sockets connect on the database thread's connection rather than each opening and
closing its own (an SQLite connection's open and close cost more than the connect's queries)."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from agents.models import Session
from playground import feed_socket
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


@pytest.mark.parametrize(("message_type", "trips"), [("feed.batch", 0), ("websocket.receive", 1)])
async def test_only_a_browser_frame_costs_a_trip_to_close_stale_connections(
    monkeypatch: pytest.MonkeyPatch, message_type: str, trips: int
) -> None:
    """Channels makes that trip before every message; with ``CONN_MAX_AGE`` 0 it closed the
    database thread's connection, so each socket's connect opened and closed an SQLite
    connection. Only a frame may start database work (a command); connects and layer messages
    keep the connection."""
    made: list[None] = []

    async def close_old_connections() -> None:
        made.append(None)

    monkeypatch.setattr(feed_socket, "aclose_old_connections", close_old_connections)
    consumer = Recorder()
    await consumer.dispatch({"type": message_type})
    assert consumer.handled == [message_type]
    assert len(made) == trips


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
