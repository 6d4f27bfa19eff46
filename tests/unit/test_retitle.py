"""A session's first message gives a default-titled session its title: once, in the message's
own transaction, never over a rename; its tabs get the heading, the tab's title, the settings'
title field and the sidebar row, out of band."""

from __future__ import annotations

import re
import uuid

import pytest

from agents.live.turn import _retitle
from agents.models import DEFAULT_TITLE, Session, title_from_message
from agents.run.events import Retitled, decode, encode
from agents.run.writes import WriteBehind
from playground.render import event_html, viewer_event_html

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("message", "title"),
    [
        ("Tides at Brest?", "Tides at Brest?"),
        ("  /research 3\n\ttides  ", "/research 3 tides"),  # whitespace collapsed
        ("", ""),
        (" \n ", ""),
        # Longer than 60: cut at the last word boundary before, with an ellipsis.
        (
            "What are the tide tables at Brest, Saint-Malo and Cherbourg for the next week?",
            "What are the tide tables at Brest, Saint-Malo and Cherbourg…",
        ),
        ("word " * 20, "word word word word word word word word word word word word…"),
        ("x" * 100, "x" * 60 + "…"),  # one long word: cut where the limit falls
        ("a" * 59 + " bcd", "a" * 59 + "…"),
        ("a" * 55 + " bcd", "a" * 55 + " bcd"),  # 59 characters: whole
    ],
)
def test_a_title_is_the_start_of_the_message(message: str, title: str) -> None:
    assert title_from_message(message) == title


def test_a_title_is_at_most_the_limit_and_an_ellipsis() -> None:
    for size in range(1, 200):
        text = " ".join(["tide"] * size)
        title = title_from_message(text)
        assert len(title) <= 61
        assert title == text or title.endswith("…")
        assert title.rstrip("…") == text[: len(title.rstrip("…"))]


async def retitled(session: Session, position: int, text: str) -> list[str]:
    saved, retitle = _retitle(session, position, text)
    writes = WriteBehind(str(session.pk))
    for write in retitle:
        writes.submit(write)
    await writes.flush()
    return saved


@pytest.mark.django_db(transaction=True)
async def test_the_first_message_titles_a_default_titled_session() -> None:
    session = await Session.objects.acreate(model="sim")
    assert session.title == DEFAULT_TITLE
    assert await retitled(session, 0, "Tide tables at\nBrest") == ["Tide tables at Brest"]
    assert (await Session.objects.aget(pk=session.pk)).title == "Tide tables at Brest"


@pytest.mark.django_db(transaction=True)
async def test_a_rename_is_never_overwritten() -> None:
    renamed = await Session.objects.acreate(model="sim", title="Harbour notes")
    assert await retitled(renamed, 0, "Tide tables") == []
    # Renamed after the turn read the session, before its message was written: the rename wins.
    raced = await Session.objects.acreate(model="sim")
    await Session.objects.filter(pk=raced.pk).aupdate(title="Mine")
    assert await retitled(raced, 0, "Tide tables") == []
    titles = {s.pk: s.title async for s in Session.objects.all()}
    assert titles == {renamed.pk: "Harbour notes", raced.pk: "Mine"}


@pytest.mark.django_db(transaction=True)
async def test_only_the_first_message_titles_and_a_blank_one_does_not() -> None:
    session = await Session.objects.acreate(model="sim")
    assert await retitled(session, 2, "A later message") == []
    assert await retitled(session, 0, "   ") == []
    assert (await Session.objects.aget(pk=session.pk)).title == DEFAULT_TITLE


SESSION_ID = str(uuid.uuid4())
HOSTILE = '<script>alert("x")</script>'


def test_the_tabs_get_the_heading_the_tab_title_the_title_field_and_the_sidebar_row() -> None:
    html = event_html(Retitled(SESSION_ID, "Tides & <b>Brest</b>", pinned=False))
    escaped = "Tides &amp; &lt;b&gt;Brest&lt;/b&gt;"
    assert f"<title>{escaped} · Agent playground</title>" in html  # for an HTTP response
    # Over the socket (htmx's ws extension drops a <title>): into the page's own.
    assert f'<div hx-swap-oob="innerHTML:head > title">{escaped} · Agent playground</div>' in html
    assert f'<h1 id="session-title" hx-swap-oob="true">{escaped}</h1>' in html
    field = re.search(r'<input [^>]*id="id_title"[^>]*>', html)
    assert field is not None
    assert f'value="{escaped}"' in field.group(0)
    assert 'name="title"' in field.group(0)
    assert 'hx-swap-oob="true"' in field.group(0)
    row = re.search(rf'<li id="listed-{SESSION_ID}"[^>]*>.*?</li>', html, re.S)
    assert row is not None
    assert 'class="current"' in row.group(0)
    assert 'hx-swap-oob="true"' in row.group(0)
    assert f'aria-current="page">{escaped}</a>' in row.group(0)
    assert f'aria-label="Rename {escaped}"' in row.group(0)
    assert 'class="pin"' not in row.group(0)
    assert ">Pin</button>" in row.group(0)


def test_a_pinned_sessions_row_keeps_its_pin() -> None:
    html = event_html(Retitled(SESSION_ID, "Tides", pinned=True))
    assert 'class="current pinned"' in html
    assert '<span class="pin" role="img" aria-label="Pinned"' in html
    assert ">Unpin</button>" in html


def test_a_viewer_gets_the_heading_only_and_the_event_travels_between_processes() -> None:
    event = Retitled(SESSION_ID, HOSTILE, pinned=True)
    viewer = viewer_event_html(event)
    assert viewer.startswith('<h1 id="shared-title" data-title hx-swap-oob="true">')
    assert "<script" not in viewer
    assert "session-list" not in viewer  # no sidebar row, no settings field
    assert 'name="title"' not in viewer
    assert decode(encode(event)) == event
    assert "<script" not in event_html(event)
