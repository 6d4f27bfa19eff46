"""Fuzz every entry a visitor reaches: the owner's socket, a viewer's socket and the views.

Seeded (``FUZZ_SEED`` picks another run; a failure names its seed and case), over 10,000 cases
in all. Whatever arrives: no 500, no close 1011, no dead socket or consumer, and no change to any
session but the caller's own. A session of another browser, with a transcript, tools and a share
link, is compared field by field before and after.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client

from agents.models import Item, Session, ShareLink, Step, Tool
from playground import share
from playground.access import visible_sessions
from tests.hostile import Hostile
from tests.simserver import SimServer
from tests.tabs import Tab, new_browser, new_session
from tests.test_share import Viewer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("runners")]

SEED = int(os.environ.get("FUZZ_SEED", "20261130"))
# 10,000 cases in all, most where a case is cheap: a frame costs ~0.3 ms, a form post or an
# import (a page rendered with its forms) ~15 ms.
OWNER_FRAMES = 6_000
VIEWER_FRAMES = 2_500
REQUESTS = 1_500
# The PostgreSQL pass (make pytest-postgres) repeats these against PostgreSQL's own refusals
# (it stores no lone surrogate, say); the SQLite pass holds the 10,000 cases, so a third of the
# form posts suffices here and the pass stays short.
POSTGRES_SHARE = 3
SETTINGS = {
    "title": "Mine",
    "model": "sim",
    "instructions": "Be brief.",
    "store": "on",
    "transport": "websocket",
    "max_steps": "5",
}
TOOL = {"name": "lookup", "description": "Looks up.", "mode": "mock", "mock_output": "{{q}}"}
SHARE = {"label": "team", "expiry": "1d"}
CHARSETS = ("utf-8", "utf-8", "utf-8", "utf-7")


async def state_of_others(mine: set[str]) -> list[Any]:
    """Every stored field of every session but ``mine``, and of what hangs off them."""
    others = Session.objects.exclude(pk__in=mine)
    rows: list[Any] = [s async for s in others.order_by("pk").values()]
    for model in (Item, Tool, Step, ShareLink):
        query = model.objects.filter(session__in=others).order_by("pk")
        rows += [row async for row in query.values()]
    return rows


async def a_bystander() -> Session:
    """Another visitor's session with a transcript, a tool and a share link."""
    session = await new_session(await new_browser(), title="Bystander", instructions="Private.")
    await Item.objects.acreate(
        session=session,
        position=0,
        data={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
    )
    await Tool.objects.acreate(session=session, name="lookup", mock_output="{{q}}")
    await share.create_link(session, label="", include_instructions=False, expiry="1d")
    return session


class Drain:
    """Reads what a socket sent without waiting, and acknowledges it as the page does."""

    def __init__(self, tab: Tab) -> None:
        self.tab = tab
        self.received = 0

    async def check(self, case: int) -> None:
        communicator = self.tab.communicator
        assert communicator is not None
        await asyncio.sleep(0)
        while not communicator.output_queue.empty():
            output = communicator.output_queue.get_nowait()
            assert output["type"] != "websocket.close", f"seed {SEED} case {case}: {output}"
            self.received += 1
        if communicator.future.done():
            communicator.future.result()  # raises what killed the consumer
            pytest.fail(f"seed {SEED} case {case}: the consumer ended")
        if self.received:
            ack = {"action": "ack", "received": self.received}
            await communicator.send_to(text_data=json.dumps(ack))


async def test_random_frames_on_the_owners_socket_change_only_the_owners_session(
    sim_server: SimServer, use_upstream: Callable[[SimServer], SimServer]
) -> None:
    use_upstream(sim_server)
    bystander = await a_bystander()
    browser = await new_browser()
    mine = await new_session(browser)
    before = await state_of_others({str(mine.pk)})
    hostile = Hostile(SEED)
    tab = await Tab(str(mine.pk), browser).open()
    drain = Drain(tab)
    for case in range(OWNER_FRAMES):
        await tab.send_frame(hostile.frame())
        await drain.check(case)
    await tab.stop()
    await drain.check(OWNER_FRAMES)
    await tab.close()

    assert await state_of_others({str(mine.pk)}) == before
    # The owner's session still opens: a new socket gets its snapshot.
    again = await Tab(str(mine.pk), browser).open()
    assert 'id="transcript"' in await again.until(r'id="transcript"')
    await again.close()
    assert await Session.objects.filter(pk=bystander.pk).aexists()


async def test_random_frames_on_a_viewers_socket_change_nothing() -> None:
    session = await a_bystander()
    _link, token = await share.create_link(
        session, label="", include_instructions=False, expiry="1d"
    )
    before = await state_of_others(set())
    viewer = await viewer_tab(token)
    drain = Drain(viewer)
    hostile = Hostile(SEED + 1)
    for case in range(VIEWER_FRAMES):
        await viewer.send_frame(hostile.frame())
        await drain.check(case)
    await viewer.close()
    after = await state_of_others(set())
    # Opening the link counts a view, and attaching takes the session's lease (its fencing
    # token goes up); nothing else may change.
    for rows in (before, after):
        for row in rows:
            for counter in ("views", "last_used", "fence"):
                row.pop(counter, None)
    assert after == before


async def viewer_tab(token: str) -> Tab:
    """A share viewer's socket as the viewer page opens it."""
    return await Viewer(token, "").open()


def test_random_form_posts_and_imports_never_fail_and_touch_only_the_callers_sessions(
    db: None,
) -> None:
    bystander = async_to_sync(a_bystander)()
    client = Client(raise_request_exception=False)
    client.post("/sessions/new/")
    mine = Session.objects.exclude(pk=bystander.pk).get()
    tool = Tool.objects.create(session=mine, name="mine", mock_output="ok")
    before = async_to_sync(state_of_others)({str(mine.pk)})
    hostile = Hostile(SEED + 2)
    new_tool = {f"new-{name}": value for name, value in TOOL.items()}
    targets: list[tuple[str, dict[str, str]]] = [
        (f"/sessions/{mine.pk}/settings/", SETTINGS),
        (f"/sessions/{mine.pk}/tools/", new_tool),
        (f"/sessions/{mine.pk}/tools/{tool.pk}/", {f"t{tool.pk}-{k}": v for k, v in TOOL.items()}),
        (f"/sessions/{mine.pk}/share/", SHARE),
        (f"/sessions/{bystander.pk}/settings/", SETTINGS),
        (f"/sessions/{bystander.pk}/tools/", new_tool),
        ("/sessions/new/", {}),
    ]
    statuses: Counter[int] = Counter()
    requests = REQUESTS // POSTGRES_SHARE if connection.vendor == "postgresql" else REQUESTS
    for case in range(requests):
        roll = hostile.random.random()
        if roll < 0.3:
            upload = SimpleUploadedFile("session.json", hostile.import_file())
            response = client.post("/sessions/import/", {"file": upload})
        elif roll < 0.4:
            response = client.get(f"/sessions/{mine.pk}/")
        else:
            path, fields = hostile.choice(targets)
            response = post_form(client, path, hostile.form(fields), hostile.choice(CHARSETS))
        assert response.status_code < 500, f"seed {SEED + 2} case {case}: {response.content!r}"
        statuses[response.status_code] += 1
    # Both kinds of path were walked: accepted posts, and refusals with a reason.
    assert statuses[200] > requests // 30, statuses
    assert statuses[302] > requests // 300, statuses
    assert statuses[422] > requests // 30, statuses
    assert async_to_sync(state_of_others)(_sessions_of(client)) == before
    assert client.get(f"/sessions/{mine.pk}/").status_code == 200


def post_form(client: Client, path: str, data: dict[str, str], charset: str) -> Any:
    """A form post as raw bytes, as an attacker may send it: lone surrogates pass through
    (UTF-8 or UTF-7 encoded), which no browser would send and Django's test client refuses."""
    body = urlencode(data, encoding=charset, errors="surrogatepass")
    content_type = f"application/x-www-form-urlencoded; charset={charset}"
    return client.post(path, body, content_type=content_type)


def _sessions_of(client: Client) -> set[str]:
    """The sessions this client's browser owns (it created some by posts and imports)."""
    key = client.session.session_key
    return {str(s.pk) for s in Session.objects.all() if _owned(s, key)}


def _owned(session: Session, browser_key: str | None) -> bool:
    return visible_sessions(None, browser_key).filter(pk=session.pk).exists()
