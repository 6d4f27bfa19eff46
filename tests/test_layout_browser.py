"""The page's frame in Chromium: the instructions at the top of the conversation, the sessions
drawer on a narrow screen, a new session's suggestions, and the pages that must fit a phone
(the home page with an import's error, a stranger's session URL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ViewportSize, expect

from tests.chromium import new_session_page, overflow
from tests.liveserver import LiveServer

PHONE: ViewportSize = {"width": 390, "height": 844}
WIDE: ViewportSize = {"width": 1280, "height": 800}
LIMIT = 500  # QUOTA_INSTRUCTIONS_CHARS for this server: an over-long text is cheap to type


@pytest.fixture(scope="module")
def live(migrated_database: Path) -> Iterator[LiveServer]:
    server = LiveServer({"QUOTA_INSTRUCTIONS_CHARS": str(LIMIT)}, template=migrated_database)
    yield server.start()
    server.stop()


@pytest.mark.timeout(60)
def test_the_instructions_are_edited_at_the_top_of_the_conversation(
    browser: Browser, live: LiveServer
) -> None:
    page = new_session_page(browser, live, WIDE)
    card = page.locator("#instructions")
    expect(card).to_have_attribute("open", "")  # a new session shows them open
    box = card.locator("textarea[name=instructions]")
    conversation = page.locator(".conversation").bounding_box()
    top = box.bounding_box()
    assert conversation is not None
    assert top is not None
    assert top["y"] < conversation["y"] + 200, "not at the top"

    box.fill("x" * (LIMIT + 1))
    card.get_by_role("button", name="Save").click()
    expect(card.locator(".errorlist")).to_contain_text(f"{LIMIT:,}")
    expect(card.locator(".saved")).to_have_count(0)

    box.fill("Answer in French.")
    card.get_by_role("button", name="Save").click()
    expect(card.locator(".saved")).to_be_visible()
    expect(card.locator(".errorlist")).to_have_count(0)
    page.reload()
    expect(page.locator("#instructions textarea")).to_have_value("Answer in French.")
    page.context.close()


@pytest.mark.timeout(60)
def test_a_suggestion_fills_the_composer_and_goes_once_the_session_starts(
    browser: Browser, live: LiveServer
) -> None:
    page = new_session_page(browser, live, WIDE)
    suggestion = page.locator("button.suggestion", has_text="/chat")
    suggestion.click()
    box = page.locator("textarea[name=message]")
    expect(box).to_be_focused()
    expect(box).to_have_value("/chat 120")
    page.keyboard.press("Enter")
    expect(page.locator("#transcript .item.message.assistant.completed")).to_have_count(1)
    expect(page.locator(".empty-state")).to_be_hidden()
    page.reload()
    expect(page.locator(".empty-state")).to_have_count(0)
    page.context.close()


@pytest.mark.timeout(60)
def test_on_a_phone_the_sessions_are_a_drawer(browser: Browser, live: LiveServer) -> None:
    page = new_session_page(browser, live, PHONE)
    sidebar = page.locator("#sessions-panel")
    toggle = page.locator("#sessions-toggle")
    expect(sidebar).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(sidebar).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#session-search")).to_be_focused()
    expect(sidebar.locator("#session-list li.current")).to_have_count(1)
    page.keyboard.press("Escape")
    expect(sidebar).to_be_hidden()
    expect(toggle).to_be_focused()
    toggle.click()
    page.mouse.click(PHONE["width"] - 10, 400)  # beside the drawer: it closes
    expect(sidebar).to_be_hidden()
    assert overflow(page) == 0
    page.context.close()


@pytest.mark.timeout(60)
def test_the_wide_page_shows_sidebar_conversation_and_settings_side_by_side(
    browser: Browser, live: LiveServer
) -> None:
    page = new_session_page(browser, live, WIDE)
    expect(page.locator("#sessions-toggle")).to_be_hidden()
    boxes = [
        page.locator(css).bounding_box()
        for css in ("#sessions-panel", ".conversation", "aside.settings")
    ]
    assert all(boxes)
    lefts = [box["x"] for box in boxes if box]
    assert lefts == sorted(lefts), lefts
    assert len(set(lefts)) == 3, lefts
    assert overflow(page) == 0
    page.context.close()


@pytest.mark.timeout(60)
def test_an_import_error_and_a_strangers_url_fit_a_phone(
    browser: Browser, live: LiveServer, tmp_path: Path
) -> None:
    context = browser.new_context(base_url=live.base_url, viewport=PHONE)
    page = context.new_page()
    page.goto("/")
    assert overflow(page) == 0
    bad = tmp_path / "not-a-session.json"
    bad.write_text('{"format": "something else"}')
    page.set_input_files("#import input[type=file]", str(bad))
    page.locator("#import button[type=submit]").click()
    error = page.locator("#import-error")
    expect(error).to_be_visible()
    expect(error).to_have_css("border-top-style", "solid")  # shown as an alert, not plain text
    assert overflow(page) == 0

    response = page.goto("/sessions/00000000-0000-4000-8000-000000000000/")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", name="This session is not here")).to_be_visible()
    assert overflow(page) == 0
    context.close()


@pytest.mark.timeout(60)
def test_a_tools_form_loads_when_its_row_opens_and_saves(
    browser: Browser, live: LiveServer
) -> None:
    page = new_session_page(browser, live, WIDE)
    row = page.locator("#tools details.tool:not(.new)", has_text="calculator")
    expect(row.locator("form")).to_have_count(0)  # not rendered until asked for
    row.locator("summary").click()
    description = row.locator("textarea[name$=-description]")
    expect(description).to_be_visible()
    description.fill("Exact arithmetic.")
    row.get_by_role("button", name="Save tool").click()
    expect(page.locator("#notice")).to_contain_text("Tools saved")
    page.reload()
    page.locator("#tools details.tool:not(.new)", has_text="calculator").locator("summary").click()
    saved = page.locator("#tools details.tool:not(.new) textarea[name$=-description]")
    expect(saved).to_have_value("Exact arithmetic.")
    page.context.close()
