"""An accessibility pass with axe-core (bundled by axe-playwright-python, never from a CDN): the
home page, a session page after a run (light and dark), and a share viewer have no serious or
critical violation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from tests.liveserver import LiveServer

BLOCKING = ("serious", "critical")


@pytest.fixture(scope="module")
def live(migrated_database: Path) -> Iterator[LiveServer]:
    server = LiveServer(template=migrated_database).start()
    yield server
    server.stop()


def violations(page: Page) -> list[str]:
    found: list[dict[str, Any]] = Axe().run(page).response["violations"]
    return [
        f"{v['impact']} {v['id']}: {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in found
        if v["impact"] in BLOCKING
    ]


@pytest.mark.timeout(90)
def test_the_home_session_and_viewer_pages_pass_axe(browser: Browser, live: LiveServer) -> None:
    context = browser.new_context(base_url=live.base_url)
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto("/")
    assert violations(page) == []

    page.click("#new-session")
    page.wait_for_url("**/sessions/*/")
    expect(page.locator("#status")).to_have_attribute("data-busy", "false")
    page.fill("textarea[name=message]", "/chat 40 tides")
    page.keyboard.press("Enter")
    expect(page.locator("#transcript .item.message.assistant.completed")).to_have_count(1)
    page.click("#share-create")
    link = page.locator("#share-url").input_value()
    assert violations(page) == []
    page.click("#theme")
    page.click("#theme")  # dark: its own contrasts
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    assert violations(page) == []

    viewer = context.new_page()
    viewer.goto(link)
    expect(viewer.locator("#shared h1[data-title]")).to_be_visible()
    expect(viewer.locator("#transcript .item.message.assistant")).to_have_count(1)
    assert violations(viewer) == []
    context.close()
