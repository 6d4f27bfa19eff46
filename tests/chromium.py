"""What the Chromium tests of the pages share: a new visitor's new session page, and how much a
page is wider than its window."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.liveserver import LiveServer

# Playwright's own default window (viewport=None would mean no viewport at all).
DEFAULT_VIEWPORT: ViewportSize = {"width": 1280, "height": 720}


def new_session_page(
    browser: Browser, server: LiveServer, viewport: ViewportSize = DEFAULT_VIEWPORT
) -> Page:
    """A new session's page in a new browser context (its own visitor), its socket connected."""
    context = browser.new_context(base_url=server.base_url, viewport=viewport)
    context.set_default_timeout(20_000)
    tab = context.new_page()
    tab.goto("/")
    tab.click("#new-session")
    tab.wait_for_url("**/sessions/*/")
    expect(tab.locator("#status")).to_have_attribute("data-busy", "false")
    return tab


def overflow(page: Page) -> int:
    """How many pixels the page is wider than the window (0: no horizontal scrolling)."""
    width: int = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    return width
