"""Two real browsers on a live daphne: the owner shares a session, a viewer follows a run live
through the link, and loses it the moment the owner revokes the link; daphne's access log never
holds the link's token."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.liveserver import LiveServer
from tests.services import REDIS_URL, require_redis

# Recorded from each page's first byte: socket opens, applied messages, and how the socket closed.
PROBE = """
window.probe = {opens: 0, messages: 0, closeCode: null};
document.addEventListener("htmx:wsOpen", () => { window.probe.opens += 1; });
document.addEventListener("htmx:wsAfterMessage", () => { window.probe.messages += 1; });
document.addEventListener("htmx:wsClose", (e) => { window.probe.closeCode = e.detail.event.code; });
"""
# About 4 s of streaming at the realistic profile's 100 tokens/s.
MESSAGE = "/chat 400 the tides of the Atlantic coast"
CONNECTED = "window.probe.opens >= 1 && window.probe.messages >= 1"
OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
TOKEN_RE = re.compile(r"/s/#?([A-Za-z0-9_-]{43})")


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(request: pytest.FixtureRequest, migrated_database: Path) -> Iterator[LiveServer]:
    env = {"SIMULATOR_PROFILE": "realistic"}
    if request.param == "redis":  # the revocation goes through the channels-redis layer
        require_redis()
        env["REDIS_URL"] = REDIS_URL
    live = LiveServer(env, template=migrated_database).start()
    yield live
    live.stop()


def new_page(
    browser: Browser, server: LiveServer, errors: list[str]
) -> tuple[BrowserContext, Page]:
    """A page in a browser context of its own: its own cookies, as another person's browser."""
    context = browser.new_context(base_url=server.base_url)
    context.set_default_timeout(20_000)
    context.add_init_script(PROBE)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())  # "Revoke this link?"
    return context, page


@pytest.mark.timeout(60)
def test_a_viewer_follows_a_run_live_until_the_owner_revokes_the_link(
    browser: Browser, server: LiveServer
) -> None:
    errors: list[str] = []
    owner_context, owner = new_page(browser, server, errors)
    viewer_context, viewer = new_page(browser, server, errors)
    try:
        owner.goto("/")
        owner.click("#new-session")
        owner.wait_for_url("**/sessions/*/")
        owner.wait_for_function(CONNECTED)

        owner.fill("#share input[name=label]", "for the team")
        owner.select_option("#share select[name=expiry]", "1h")
        owner.click("#share-create")
        url = owner.locator("#share-url").input_value()
        assert "/s/" in url
        expect(owner.locator("#share tr[data-state=active]")).to_have_count(1)

        response = viewer.goto(url)
        assert response is not None
        assert response.status == 200
        assert response.headers["referrer-policy"] == "no-referrer"
        viewer.wait_for_function(CONNECTED)
        expect(viewer.locator("#composer")).to_have_count(0)
        expect(viewer.locator("form")).to_have_count(0)

        owner.fill("textarea[name=message]", MESSAGE)
        owner.click("#send")
        # The viewer sees the reply stream in while the owner's run is still going.
        streaming = viewer.locator("#transcript .item.live .streaming")
        expect(streaming).not_to_have_text("")
        expect(viewer.locator("#status")).to_have_attribute("data-busy", "true")
        expect(viewer.locator("#stop")).to_have_count(0)
        expect(owner.locator("#status")).to_have_attribute("data-busy", "true")
        expect(viewer.locator("#transcript .item.message.user .body")).to_have_text(MESSAGE)
        expect(viewer.locator("#shared-title")).to_have_text(MESSAGE)  # its first message titles it

        revoke = owner.locator("#share button.revoke")
        revoke.scroll_into_view_if_needed()  # the clock times the revocation, not the scroll
        started = time.monotonic()
        revoke.click()
        viewer.wait_for_function("window.probe.closeCode !== null", timeout=1_000)
        assert time.monotonic() - started < 1.0
        assert viewer.evaluate("window.probe.closeCode") == 4410
        expect(viewer.locator("#notice")).to_contain_text("revoked this link")
        # Nothing streams any more, and the page says so (it kept "Running…" and the cursor).
        expect(viewer.locator("#status")).to_have_attribute("data-busy", "false")
        expect(viewer.locator("#status")).to_contain_text("Disconnected")
        expect(viewer.locator(".streaming")).to_have_count(0)
        expect(owner.locator("#share tr[data-state=revoked]")).to_have_count(1)

        # Opened again, the link opens nothing: a styled page says so (the same words for a
        # revoked, expired or unknown link), and it fits a phone.
        viewer.set_viewport_size({"width": 390, "height": 844})
        reloaded = viewer.reload()
        assert reloaded is not None
        gone = viewer.locator("main #share-gone")
        expect(gone.locator("h1")).to_have_text("This link does not open a session")
        # It replaced the socket's element: nothing reconnects (the 4404: tests/test_share.py).
        assert viewer.evaluate("window.probe.opens") == 1
        expect(gone).to_contain_text("revoked by the session's owner, it has expired")
        expect(viewer.locator("#transcript")).to_have_count(0)
        assert gone.evaluate("e => getComputedStyle(e.querySelector('h1')).fontFamily") == (
            viewer.evaluate("getComputedStyle(document.body).fontFamily")  # not a bare page
        )
        assert viewer.evaluate(OVERFLOW) <= 0
        assert errors == [], f"{errors}\n--- server log ---\n{server.output()}"
    finally:
        viewer_context.close()
        owner_context.close()


@pytest.mark.timeout(60)
def test_no_access_log_line_holds_the_token_of_a_link_a_viewer_opened(
    browser: Browser, server: LiveServer
) -> None:
    """The access lines give every request's and socket's path, and so would a proxy's: the
    token rides in the URL's fragment, which browsers never send, and in the socket's first
    frame, which no access log records. An old-form link's path is redacted in the log."""
    errors: list[str] = []
    owner_context, owner = new_page(browser, server, errors)
    viewer_context, viewer = new_page(browser, server, errors)
    try:
        owner.goto("/")
        owner.click("#new-session")
        owner.wait_for_url("**/sessions/*/")
        owner.wait_for_function(CONNECTED)
        title = owner.locator("#settings input[name=title]").input_value()
        owner.click("#share-create")
        url = owner.locator("#share-url").input_value()
        match = TOKEN_RE.search(url)
        assert match, url
        token = match[1]

        viewer.goto(url)  # pasted into another browser
        viewer.wait_for_function(CONNECTED)
        viewer_context.close()  # WSDISCONNECT is logged too
        deadline = time.monotonic() + 5
        while "Socket close /ws/share/" not in server.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        log = server.output()
        assert "playground.access Socket open /ws/share/" in log, log  # the access lines
        assert "playground.access GET /s/ 200" in log, log
        assert token not in log, log

        viewer_context, viewer = new_page(browser, server, errors)
        viewer.goto(url)
        viewer.wait_for_function(CONNECTED)
        expect(viewer.locator("#shared h1")).to_have_text(title)
        expect(viewer.locator("#transcript")).to_have_count(1)
        assert title in viewer.title()
        # A link of the old form, /s/<token>/, still opens (its path is logged: docs/security.md).
        viewer.goto(f"/s/{token}/")
        viewer.wait_for_url(f"**/s/#{token}")
        viewer.wait_for_function(CONNECTED)
        expect(viewer.locator("#shared h1")).to_have_text(title)
        assert errors == [], f"{errors}\n--- server log ---\n{server.output()}"
        log = server.output()
        assert "GET /s/[redacted]/ 302" in log, log  # daphne's own access log is off
        assert token not in log, log
    finally:
        viewer_context.close()
        owner_context.close()
