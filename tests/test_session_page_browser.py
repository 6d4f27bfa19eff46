"""The session page as a user meets it in Chromium: every change it accepts or refuses says so
where the user is looking, and what the user chose is what the next step uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.liveserver import LiveServer


@pytest.fixture(scope="module")
def live(migrated_database: Path) -> Iterator[LiveServer]:
    server = LiveServer(template=migrated_database).start()
    yield server
    server.stop()


@pytest.fixture
def page(browser: Browser, live: LiveServer) -> Iterator[Page]:
    """A new session's page, its socket connected."""
    context = browser.new_context(base_url=live.base_url)
    context.set_default_timeout(20_000)
    tab = context.new_page()
    tab.goto("/")
    tab.click("#new-session")
    tab.wait_for_url("**/sessions/*/")
    expect(tab.locator("#status")).to_have_attribute("data-busy", "false")
    yield tab
    context.close()


def save_settings(page: Page) -> None:
    page.locator("#settings button[type=submit]").click()


def send(page: Page, message: str, steps_before: int) -> None:
    page.fill("textarea[name=message]", message)
    page.click("#send")
    expect(page.locator("#transcript .step")).to_have_count(steps_before + 1)
    expect(page.locator("#status")).to_have_attribute("data-busy", "false")


@pytest.mark.timeout(60)
def test_a_refused_setting_says_why_and_no_longer_says_saved(page: Page) -> None:
    page.fill("#id_max_steps", "5")
    save_settings(page)
    expect(page.locator("#settings .saved")).to_be_visible()

    page.fill("#id_max_steps", "0")
    save_settings(page)
    expect(page.locator("#settings .errorlist")).to_contain_text("greater than or equal to 1")
    expect(page.locator("#settings .saved")).to_have_count(0)
    expect(page.locator("#id_max_steps")).to_have_value("0")  # what the user typed stays


@pytest.mark.timeout(60)
def test_a_refused_tool_says_why(page: Page) -> None:
    page.locator("#tools details.new summary").click()
    page.fill("#id_new-name", "lookup")
    page.fill("#id_new-parameters", "{not json")
    page.locator("#tools details.new button[type=submit]").click()
    expect(page.locator("#tools details.new .errorlist")).to_contain_text("JSON")
    expect(page.locator("#id_new-parameters")).to_have_value("{not json")


@pytest.mark.timeout(60)
def test_a_rename_shows_in_the_heading_and_the_tab_title(page: Page) -> None:
    page.fill("#id_title", "Tide research")
    save_settings(page)
    expect(page.locator("h1")).to_have_text("Tide research")
    expect(page).to_have_title("Tide research · Agent playground")


@pytest.mark.timeout(90)
def test_a_session_switched_to_http_goes_back_to_websocket(page: Page) -> None:
    page.select_option("#id_transport", "http")
    save_settings(page)
    expect(page.locator("#settings .saved")).to_be_visible()
    send(page, "/chat 3 first", 0)
    expect(page.locator("#transcript .step").last).to_contain_text("socket http")

    page.select_option("#id_transport", "websocket")
    save_settings(page)
    expect(page.locator("#settings .saved")).to_be_visible()
    send(page, "/chat 3 second", 1)
    expect(page.locator("#transcript .step").last).not_to_contain_text("socket http")
