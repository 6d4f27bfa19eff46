"""The HTTP pages: who sees which session, the session page's transcript, the settings form."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.test import Client

from agents.models import Item, Session, Step, Tool
from playground.access import browser_key_hash
from playground.tool_presets import PRESETS

pytestmark = pytest.mark.django_db

USER_TEXT = "What is <b>up</b>?"
ASSISTANT_TEXT = "**bold** <script>alert(1)</script>"


def session_url(session: Session) -> str:
    return f"/sessions/{session.pk}/"


def new_session_of(client: Client, *, tools: bool = True) -> Session:
    """POST /sessions/new/ as this browser; the session it was redirected to (with the built-in
    tools on, as a click on "New session" gives, unless ``tools`` is false)."""
    response = client.post("/sessions/new/", {} if tools else {"tools": "none"})
    assert response.status_code == 302
    match = re.fullmatch(r"/sessions/([0-9a-f-]{36})/", response["Location"])
    assert match, response["Location"]
    return Session.objects.get(pk=match.group(1))


def listed_ids(client: Client) -> set[str]:
    response = client.get("/")
    assert response.status_code == 200
    return set(re.findall(r'href="/sessions/([0-9a-f-]{36})/"', response.content.decode()))


def browser_key(client: Client) -> str:
    return str(client.session.session_key)


@pytest.fixture
def user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="ada", password="pw-ada-123")


@pytest.fixture
def other_user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="bob", password="pw-bob-123")


# -- creating and listing --------------------------------------------------------------------------


def test_a_new_anonymous_session_belongs_to_the_browser(settings: Any) -> None:
    browser = Client()
    session = new_session_of(browser)
    assert session.owner is None
    assert session.browser_key
    assert session.browser_key == browser_key_hash(browser_key(browser))
    assert session.model == settings.UPSTREAM_MODEL
    assert browser.get(session_url(session)).status_code == 200


def test_a_new_session_of_a_logged_in_user_belongs_to_the_user(user: Any) -> None:
    browser = Client()
    browser.force_login(user)
    session = new_session_of(browser)
    assert session.owner == user
    assert session.browser_key == ""
    assert browser.get(session_url(session)).status_code == 200


def test_the_redirect_goes_to_the_new_sessions_page() -> None:
    response = Client().post("/sessions/new/", follow=True)
    assert response.status_code == 200
    [(url, status)] = response.redirect_chain
    assert status == 302
    session = Session.objects.get()
    assert url == session_url(session)
    assert f'ws-connect="/ws/sessions/{session.pk}/"' in response.content.decode()


def tools_panel(client: Client, session: Session) -> str:
    page = client.get(session_url(session)).content.decode()
    panel = page[page.index('<section id="tools"') :]
    return panel[: panel.index("</section>")]


def test_a_new_session_starts_with_the_built_in_tools_on() -> None:
    browser = Client()
    session = new_session_of(browser)
    tools = list(Tool.objects.filter(session=session).order_by("name"))
    assert [(tool.name, tool.mode, tool.builtin) for tool in tools] == [
        ("calculator", "builtin", "calculator"),
        ("current_time", "builtin", "current_time"),
        ("notes", "builtin", "notes"),
    ]
    # Exactly what the tools panel's preset buttons add.
    by_hand = new_session_of(browser, tools=False)
    for preset in PRESETS:
        if preset.fields["mode"] == "builtin":
            fields = {f"new-{name}": value for name, value in preset.fields.items()}
            assert browser.post(f"/sessions/{by_hand.pk}/tools/", fields).status_code == 200
    added = Tool.objects.filter(session=by_hand).order_by("name")
    assert [tool.definition() for tool in tools] == [tool.definition() for tool in added]
    # The page shows them, each with its form.
    panel = tools_panel(browser, session)
    assert "No tools" not in panel
    for tool in tools:
        assert f"<summary><code>{tool.name}</code>" in panel
        form = browser.get(f"/sessions/{session.pk}/tools/{tool.pk}/form/").content.decode()
        assert f'name="t{tool.pk}-name"' in form


def test_a_session_made_otherwise_starts_without_tools() -> None:
    browser = Client()
    asked = new_session_of(browser, tools=False)  # a script's (the benchmark's) "New session"
    assert "No tools" in tools_panel(browser, asked)
    direct = Session.objects.create(model="sim", browser_key=asked.browser_key)
    assert not Tool.objects.filter(session__in=[asked, direct]).exists()


def test_a_new_session_and_its_tools_are_saved_together(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(Tool.objects, "bulk_create", refuse)
    with pytest.raises(RuntimeError):
        Client().post("/sessions/new/")
    assert not Session.objects.exists()


def test_the_home_page_lists_only_this_browsers_sessions() -> None:
    browser_a, browser_b = Client(), Client()
    a1, a2 = new_session_of(browser_a), new_session_of(browser_a)
    b1 = new_session_of(browser_b)
    assert browser_key(browser_a) != browser_key(browser_b)
    assert listed_ids(browser_a) == {str(a1.pk), str(a2.pk)}
    assert listed_ids(browser_b) == {str(b1.pk)}
    # A browser that never created a session sees none, not everyone's.
    assert listed_ids(Client()) == set()


def test_the_home_page_lists_only_the_logged_in_users_sessions(user: Any, other_user: Any) -> None:
    mine = Session.objects.create(owner=user, model="sim", title="Mine")
    Session.objects.create(owner=other_user, model="sim", title="Theirs")
    anonymous = new_session_of(Client())
    browser = Client()
    browser.force_login(user)
    assert listed_ids(browser) == {str(mine.pk)}
    page = browser.get("/").content.decode()
    assert "Mine" in page
    assert "Theirs" not in page
    assert str(anonymous.pk) not in page


def test_an_anonymous_session_is_not_the_users_even_from_the_same_browser(user: Any) -> None:
    browser = Client()
    session = new_session_of(browser)
    browser.force_login(user)
    assert str(session.pk) not in listed_ids(browser)


def test_new_only_accepts_post() -> None:
    response = Client().get("/sessions/new/")
    assert response.status_code == 405
    assert not Session.objects.exists()


# -- the session page ------------------------------------------------------------------------------


def test_another_browsers_session_page_is_not_found() -> None:
    session = new_session_of(Client())
    assert Client().get(session_url(session)).status_code == 404
    other = Client()
    new_session_of(other)  # a browser with a session key, just not this session's
    assert other.get(session_url(session)).status_code == 404


def test_another_users_session_page_is_not_found(user: Any, other_user: Any) -> None:
    session = Session.objects.create(owner=other_user, model="sim")
    browser = Client()
    browser.force_login(user)
    assert browser.get(session_url(session)).status_code == 404
    assert Client().get(session_url(session)).status_code == 404


def test_an_unknown_session_is_not_found() -> None:
    browser = Client()
    new_session_of(browser)
    assert browser.get(f"/sessions/{uuid.uuid4()}/").status_code == 404


def item_html(page: str, item: Item) -> str:
    """The markup of one transcript item, up to the next item or the status line."""
    start = page.index(f'id="item-{item.position}"')
    rest = page[start:]
    end = min(
        (i for i in (rest.find('id="item-', 1), rest.find('id="status"')) if i > 0),
        default=len(rest),
    )
    return rest[:end]


def test_the_session_page_renders_the_transcript() -> None:
    browser = Client()
    session = new_session_of(browser)
    step = Step.objects.create(
        session=session,
        response_id="resp_1",
        mode="delta",
        socket="reused",
        status="completed",
        bytes_sent=321,
        ttft_ms=12.4,
        duration_ms=250.2,
        input_tokens=40,
        cached_tokens=30,
        output_tokens=7,
    )
    user_item = Item.objects.create(
        session=session,
        position=0,
        data={
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": USER_TEXT}],
        },
    )
    reply = Item.objects.create(
        session=session,
        position=1,
        parent=0,
        step=step,
        data={
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": ASSISTANT_TEXT}],
        },
    )
    page = browser.get(session_url(session)).content.decode()

    user_html = item_html(page, user_item)
    assert "What is &lt;b&gt;up&lt;/b&gt;?" in user_html  # the user's text is escaped
    assert "<b>up</b>" not in user_html

    reply_html = item_html(page, reply)
    assert "<strong>bold</strong>" in reply_html
    assert "<script" not in reply_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in reply_html
    assert "<script>alert(1)" not in page
    assert page.index(f'id="item-{user_item.position}"') < page.index(f'id="item-{reply.position}"')

    # The step's metrics follow the last item it produced.
    metrics = re.search(r'<div class="step" data-mode="delta"[^>]*>([^<]*)</div>', page)
    assert metrics, "no step row"
    assert page.index(f'id="item-{reply.position}"') < metrics.start()
    for part in ("socket reused", "321 B sent", "TTFT 12 ms", "250 ms", "40 in (30 cached)"):
        assert part in metrics.group(1), part
    assert "7 out" in metrics.group(1)


def test_the_session_page_has_the_socket_the_composer_and_the_settings() -> None:
    browser = Client()
    session = new_session_of(browser)
    page = browser.get(session_url(session)).content.decode()
    assert f'ws-connect="/ws/sessions/{session.pk}/"' in page
    composer = re.search(r'<form id="composer" ws-send.*?</form>', page, re.S)
    assert composer, "no composer"
    assert 'name="action" value="send"' in composer.group(0)
    assert '<textarea name="message"' in composer.group(0)
    settings_form = re.search(r'<form id="settings".*?</form>', page, re.S)
    assert settings_form, "no settings form"
    assert f'hx-post="/sessions/{session.pk}/settings/"' in settings_form.group(0)
    for field in ("title", "model", "store"):
        assert f'name="{field}"' in settings_form.group(0), field
    # The instructions sit at the top of the conversation, in the form all the same.
    assert re.search(r'<textarea name="instructions"[^>]* form="settings"', page)
    assert 'data-busy="false"' in page


# -- the settings form -----------------------------------------------------------------------------


def test_valid_settings_are_saved() -> None:
    browser = Client()
    session = new_session_of(browser)
    assert not session.store
    data = {
        "title": "Tides",
        "model": "gpt-test",
        "instructions": "Be brief.",
        "store": "on",
        "transport": "http",
        "max_steps": "7",
    }
    response = browser.post(f"/sessions/{session.pk}/settings/", data)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Saved" in body
    assert body.lstrip().startswith('<form id="settings"')  # the fragment, not the page
    session.refresh_from_db()
    assert (session.title, session.model, session.instructions, session.store) == (
        "Tides",
        "gpt-test",
        "Be brief.",
        True,
    )
    assert (session.transport, session.max_steps) == ("http", 7)


def test_invalid_settings_are_refused_and_change_nothing() -> None:
    browser = Client()
    session = new_session_of(browser)
    before = Session.objects.values().get(pk=session.pk)
    data = {"title": "Changed", "model": "", "instructions": "Changed", "store": "on"}
    response = browser.post(f"/sessions/{session.pk}/settings/", data)
    assert response.status_code == 422
    body = response.content.decode()
    assert "Saved" not in body
    assert "required" in body.lower()
    assert Session.objects.values().get(pk=session.pk) == before


def test_another_browsers_settings_cannot_be_changed() -> None:
    session = new_session_of(Client())
    before = Session.objects.values().get(pk=session.pk)
    intruder = Client()
    new_session_of(intruder)
    data = {"title": "Mine now", "model": "evil", "instructions": "", "store": "on"}
    response = intruder.post(f"/sessions/{session.pk}/settings/", data)
    assert response.status_code == 404
    assert Session.objects.values().get(pk=session.pk) == before


def test_settings_only_accept_post() -> None:
    browser = Client()
    session = new_session_of(browser)
    assert browser.get(f"/sessions/{session.pk}/settings/").status_code == 405
