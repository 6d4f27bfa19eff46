"""The close codes the browser receives, against real daphne: daphne (autobahn) can send only
1000 and 3000-4999, so "come back" is a 40xx code that static/playground.js reconnects on."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser as Chromium
from playwright.sync_api import expect
from websockets.exceptions import ConnectionClosed

from playground import protocol
from tests.liveserver import Browser, LiveServer, create_session, session_id
from tests.livetab import LiveTab
from tests.services import PrivateRedis
from tests.simserver import ROOT

PASSWORD = "close-codes-test-password"
SCRIPT = ROOT / "static" / "playground.js"
PROBE = """
window.probe = {opens: 0, closes: []};
document.addEventListener("htmx:wsOpen", () => { window.probe.opens += 1; });
document.addEventListener("htmx:wsClose", (e) => {
  window.probe.closes.push(e.detail.event.code);
});
"""


@pytest.fixture(scope="module")
def live(migrated_database: Path) -> Iterator[LiveServer]:
    server = LiveServer(template=migrated_database, staff_password=PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def staff(live: LiveServer) -> Browser:
    """Staff, logged in once for the module (a login hashes the password: ~0.5 s of CPU)."""
    browser = Browser(live.base_url)
    login = {"username": "staff", "password": PASSWORD, "next": "/admin/"}
    _, url, _ = browser.post_form("/admin/login/?next=/admin/", "/admin/login/", login)
    assert url.endswith("/admin/"), url
    return browser


def close_sockets_as_staff(staff: Browser, sid: str) -> None:
    """The inspector's "Close browser sockets" button, as staff clicks it."""
    page = f"/admin/inspector/{sid}/"
    status, _, _ = staff.post_form(f"{page}action/", page, {"action": "close_sockets"})
    assert status == 200


async def closed_with(tab: LiveTab, wait: float = 20) -> int | None:
    assert tab.ws is not None
    try:
        while True:
            await tab.recv(wait)
    except ConnectionClosed:
        return tab.ws.close_code


def test_every_close_code_is_one_daphne_can_send() -> None:
    codes = {name: getattr(protocol, name) for name in dir(protocol) if name.startswith("CLOSE_")}
    assert codes
    assert all(code == 1000 or 3000 <= code <= 4999 for code in codes.values()), codes


def test_the_page_reconnects_on_exactly_the_come_back_codes(live: LiveServer) -> None:
    # The script restates no code: it reads the ones the page's <body> carries, which come from
    # playground/protocol.py.
    assert "RECONNECT_CODES = document.body.dataset.reconnectCodes" in SCRIPT.read_text()
    browser = Browser(live.base_url)
    _, _, page = browser.get(urlsplit(browser.new_session()).path)
    match = re.search(r'<body[^>]* data-reconnect-codes="([\d ]+)"', page)
    assert match, "the session page tells the script the codes it reconnects on"
    assert tuple(int(code) for code in match[1].split()) == protocol.RECONNECT_CODES


async def test_staff_closing_the_sockets_reaches_the_browser_as_restart(
    live: LiveServer, staff: Browser
) -> None:
    url, cookie = create_session(live.base_url)
    sid = session_id(url)
    tab = await LiveTab(live.base_url, sid, cookie).open()
    await asyncio.to_thread(close_sockets_as_staff, staff, sid)
    assert await closed_with(tab) == protocol.CLOSE_RESTART, live.output()[-3000:]


async def test_a_lost_channel_layer_reaches_the_browser_as_retry_later(
    migrated_database: Path,
) -> None:
    redis = PrivateRedis().start()
    server = LiveServer({"REDIS_URL": redis.url}, template=migrated_database).start()
    try:
        url, cookie = create_session(server.base_url)
        tab = await LiveTab(server.base_url, session_id(url), cookie).open()
        redis.stop()  # and it stays away: the socket cannot follow the session any more
        assert await closed_with(tab, wait=60) == protocol.CLOSE_RETRY, server.output()[-3000:]
    finally:
        server.stop()
        redis.stop()


@pytest.mark.timeout(90)
def test_the_page_comes_back_after_staff_closed_its_socket(
    browser: Chromium, live: LiveServer, staff: Browser
) -> None:
    context = browser.new_context(base_url=live.base_url)
    context.set_default_timeout(20_000)
    context.add_init_script(PROBE)
    page = context.new_page()
    page.goto("/")
    page.click("#new-session")
    page.wait_for_url("**/sessions/*/")
    sid = page.url.rstrip("/").rsplit("/", 1)[1]
    page.wait_for_function("window.probe.opens === 1")
    page.fill("textarea[name=message]", "/chat 10 before the restart")
    page.click("#send")
    completed = page.locator("#transcript .item.message.assistant.completed")
    expect(completed).to_have_count(1)
    close_sockets_as_staff(staff, sid)
    page.wait_for_function("window.probe.opens === 2")
    probe: dict[str, Any] = page.evaluate("window.probe")
    assert probe["closes"] == [protocol.CLOSE_RESTART], live.output()[-3000:]
    expect(completed).to_have_count(1)  # the transcript again, from the new socket's snapshot
    expect(page.locator("#status")).to_have_attribute("data-busy", "false")
    context.close()
