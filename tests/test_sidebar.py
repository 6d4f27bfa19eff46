"""The sessions sidebar over HTTP: pinning moves a session to the top of the list, marked, and
back when unpinned; only the owner may, and only by POST."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from agents.models import Session
from tests.test_pages import new_session_of, session_url

pytestmark = pytest.mark.django_db


def rows(html: str) -> list[str]:
    """The list's rows as the browser gets them, in order."""
    return re.findall(r'<li id="listed-[^"]+".*?</li>', html, re.S)


def row_ids(html: str) -> list[str]:
    return re.findall(r'<li id="listed-([0-9a-f-]{36})"', html)


def pin(client: Client, session: Session, pinned: bool, current: Session | None = None) -> str:
    values = {"pinned": "1" if pinned else "0", "current": str(current.pk) if current else ""}
    response = client.post(f"/sessions/{session.pk}/pin/", values)
    assert response.status_code == 200
    return response.content.decode()


def titled(client: Client, *titles: str) -> list[Session]:
    """New sessions of ``client`` (the last one the most recently updated)."""
    made = []
    for title in titles:
        session = new_session_of(client, tools=False)
        session.title = title
        session.save()
        made.append(session)
    return made


def test_a_pinned_session_comes_first_marked_and_goes_back_when_unpinned() -> None:
    browser = Client()
    oldest, middle, newest = titled(browser, "Oldest", "Middle", "Newest")
    before = Session.objects.get(pk=oldest.pk).updated

    html = pin(browser, oldest, True, current=newest)
    assert row_ids(html) == [str(oldest.pk), str(newest.pk), str(middle.pk)]
    first, current, _ = rows(html)
    assert 'class="pinned"' in first
    assert '<span class="pin" role="img" aria-label="Pinned"' in first
    assert 'aria-label="Unpin Oldest">Unpin</button>' in first
    assert """hx-vals='{"pinned": "0"}'""" in first
    assert 'class="current"' in current  # the page's own session stays marked
    assert 'class="pin"' not in current
    assert 'aria-label="Pin Newest">Pin</button>' in current
    assert Session.objects.get(pk=oldest.pk).updated == before  # pinning is not a change

    # The session page and the home page list it first too.
    page = browser.get(session_url(newest)).content.decode()
    assert row_ids(page) == [str(oldest.pk), str(newest.pk), str(middle.pk)]
    home = browser.get("/").content.decode()
    assert re.findall(r'href="/sessions/([0-9a-f-]{36})/"', home)[0] == str(oldest.pk)

    # Two pinned: the most recently updated of them first; unpinned, back in its place.
    pin(browser, middle, True)
    assert row_ids(browser.get(session_url(newest)).content.decode())[:2] == [
        str(middle.pk),
        str(oldest.pk),
    ]
    pin(browser, middle, False)
    html = pin(browser, oldest, False)
    assert row_ids(html) == [str(newest.pk), str(middle.pk), str(oldest.pk)]
    assert 'class="pin"' not in html


def test_pinning_keeps_the_search() -> None:
    browser = Client()
    tides, _ = titled(browser, "Tide tables", "Harbour notes")
    response = browser.post(f"/sessions/{tides.pk}/pin/", {"pinned": "1", "q": "tide"})
    assert row_ids(response.content.decode()) == [str(tides.pk)]


def test_only_the_owner_may_pin_and_only_by_post() -> None:
    owner, stranger = Client(), Client()
    (session,) = titled(owner, "Mine")
    new_session_of(stranger, tools=False)
    response = stranger.post(f"/sessions/{session.pk}/pin/", {"pinned": "1"})
    assert response.status_code == 404
    assert owner.get(f"/sessions/{session.pk}/pin/").status_code == 405
    assert not Session.objects.get(pk=session.pk).pinned
