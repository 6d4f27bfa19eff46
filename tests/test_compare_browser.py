"""Compare and the race as a user meets them in Chromium: four columns stream at once on one
page, each ends with its steps, and the results name every column with one shared chart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.chromium import new_session_page, overflow
from tests.liveserver import LiveServer


@pytest.fixture(scope="module")
def reading_pace(migrated_database: Path) -> Iterator[LiveServer]:
    """The realistic profile streams at a reading pace: a long reply lasts seconds."""
    server = LiveServer({"SIMULATOR_PROFILE": "realistic"}, template=migrated_database).start()
    yield server
    server.stop()


@pytest.fixture
def page(browser: Browser, reading_pace: LiveServer) -> Iterator[Page]:
    tab = new_session_page(browser, reading_pace)
    yield tab
    tab.context.close()


def streaming_columns(page: Page) -> int:
    """How many columns show a reply streaming right now."""
    return int(
        page.evaluate(
            "[...document.querySelectorAll('.column-items')]"
            ".filter(c => c.querySelector('.streaming')).length"
        )
    )


@pytest.mark.timeout(120)
def test_four_columns_stream_at_once_and_end_with_their_results(page: Page) -> None:
    page.click("#compare-link")
    page.wait_for_url("**/compare/")
    page.fill("textarea[name=prompt]", "/chat 200 the history of tide tables")
    for index in (2, 3):
        page.check(f"input[name=c{index}-include]")
    page.fill("input[name=c3-label]", "Store on, WebSocket")
    page.select_option("select[name=c3-transport]", "websocket")
    page.get_by_role("button", name="Create and run").click()
    page.wait_for_url("**/compare/*/**")
    expect(page.locator(".compare-column")).to_have_count(4)
    # All four stream at the same moment: the columns run at once, not one after the other.
    page.wait_for_function(
        "[...document.querySelectorAll('.column-items')]"
        ".filter(c => c.querySelector('.streaming')).length === 4",
        timeout=30_000,
    )
    expect(page.locator("#status")).to_have_attribute("data-busy", "false", timeout=60_000)
    assert streaming_columns(page) == 0
    for index in range(4):
        column = page.locator(f"#column-{index}")
        expect(column.locator(".item.message.assistant")).to_have_count(1)
        expect(column.locator(".step")).to_have_count(1)
    rows = page.locator(".results-table tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.nth(3)).to_contain_text("Store on, WebSocket")
    expect(page.locator(".waterfall.shared .bar")).to_have_count(4)
    # Each column is a branch of the session: its page shows the prompt with "1/4".
    page.get_by_role("link", name=page.locator(".where a").inner_text()).first.click()
    expect(page.locator("#transcript .branches .count").first).to_have_text("1/4")


@pytest.mark.timeout(180)
def test_the_race_runs_in_one_click_and_fits_a_phone(page: Page) -> None:
    page.fill("textarea[name=message]", "/chat 5 hello")
    page.click("#send")
    expect(page.locator("#transcript .step")).to_have_count(1)
    page.click("#race-link")
    page.wait_for_url("**/compare/*/**")
    expect(page.locator("#status")).to_have_attribute("data-busy", "true", timeout=20_000)
    expect(page.locator("#status")).to_have_attribute("data-busy", "false", timeout=150_000)
    rows = page.locator(".results-table tbody tr")
    expect(rows).to_have_count(3)
    websocket, http_off = rows.nth(0), rows.nth(1)
    assert websocket.get_attribute("data-transport") == "websocket"
    assert http_off.get_attribute("data-store") == "false"
    # The honest part: the WebSocket column reused cached context, HTTP without store did not.
    assert int(websocket.get_attribute("data-cached-tokens") or 0) > 0
    assert int(http_off.get_attribute("data-cached-tokens") or 0) == 0
    sent_ws = float(websocket.get_attribute("data-bytes-per-step") or 0)
    assert sent_ws < float(http_off.get_attribute("data-bytes-per-step") or 0)
    page.set_viewport_size({"width": 390, "height": 844})
    assert overflow(page) == 0
