"""A real Chromium on a real daphne: create a session, send a message, read the streamed reply."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Response,
    expect,
)
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.liveserver import LiveServer
from tests.services import REDIS_URL, require_redis

# Recorded from the first byte of every page: socket opens, applied socket messages, and each
# value #status's data-busy takes, noted after every out-of-band swap (several can arrive in one
# socket message, so this sees a "true" even when a turn starts and ends within one frame).
PROBE = """
window.probe = {opens: 0, messages: 0, busy: []};
const note = () => {
  const status = document.getElementById("status");
  const busy = window.probe.busy;
  if (status && busy[busy.length - 1] !== status.dataset.busy) busy.push(status.dataset.busy);
};
document.addEventListener("DOMContentLoaded", note);
document.addEventListener("htmx:oobAfterSwap", note);
document.addEventListener("htmx:wsOpen", () => { window.probe.opens += 1; });
document.addEventListener("htmx:wsAfterMessage", () => { window.probe.messages += 1; });
"""
MESSAGE = "/chat 40 tide tables"
COMPLETED = "#transcript .item.message.assistant.completed"


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    env = {}
    if request.param == "redis":
        require_redis()
        env["REDIS_URL"] = REDIS_URL
    live = LiveServer(env).start()
    yield live
    live.stop()


@pytest.fixture
def page(browser: Browser, server: LiveServer) -> Iterator[Page]:
    context = browser.new_context(base_url=server.base_url)
    context.set_default_timeout(20_000)
    context.add_init_script(PROBE)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on("console", lambda msg: on_console(msg, errors))
    tab.on("response", lambda response: on_response(response, errors))
    yield tab
    context.close()
    assert not errors, f"the page reported errors: {errors}\n--- server log ---\n{server.output()}"


def on_console(message: ConsoleMessage, errors: list[str]) -> None:
    # A failed load is also a console error; on_response reports the ones that matter.
    if message.type == "error" and not message.text.startswith("Failed to load resource"):
        errors.append(message.text)


def on_response(response: Response, errors: list[str]) -> None:
    # Browsers ask for /favicon.ico unprompted; the playground has none.
    if response.status >= 400 and not response.url.endswith("/favicon.ico"):
        errors.append(f"{response.request.method} {response.url}: {response.status}")


def probe(page: Page) -> dict[str, Any]:
    return page.evaluate("window.probe")  # type: ignore[no-any-return]


def messages(page: Page) -> list[tuple[str, str, str]]:
    """(id, role, text) of every message in the transcript."""
    rows = page.locator("#transcript .item.message")
    return [
        (
            str(row.get_attribute("id")),
            "user" if "user" in str(row.get_attribute("class")).split() else "assistant",
            row.locator(".body").inner_text().strip(),
        )
        for row in rows.all()
    ]


def wait_connected(page: Page, server: LiveServer) -> None:
    """The ws extension opened the socket and applied the server's first (status) fragment."""
    try:
        page.wait_for_function("window.probe.opens >= 1 && window.probe.messages >= 1")
    except PlaywrightTimeoutError:
        detail = f"{probe(page)}\n--- server log ---\n{server.output()}"
        raise AssertionError(f"the page's socket did not connect: {detail}") from None


@pytest.mark.timeout(90)
def test_a_reply_streams_in_and_survives_a_reload(page: Page, server: LiveServer) -> None:
    page.goto("/")
    page.click("#new-session")
    page.wait_for_url("**/sessions/*/")
    session_url = page.url
    expect(page.locator("h1")).to_be_visible()
    wait_connected(page, server)
    expect(page.locator("#status")).to_have_attribute("data-busy", "false")

    page.fill("textarea[name=message]", MESSAGE)
    page.click("#send")

    reply = page.locator(COMPLETED)
    expect(reply).to_have_count(1)
    expect(reply.locator(".body")).not_to_have_text("")
    expect(page.locator("#transcript .item.message.user .body")).to_have_text(MESSAGE)
    expect(page.locator("#status")).to_have_attribute("data-busy", "false")
    expect(page.locator("#transcript .item.live")).to_have_count(0)
    assert probe(page)["busy"] == ["false", "true", "false"], server.output()
    expect(page.locator("textarea[name=message]")).to_have_value("")
    before = messages(page)
    assert [role for _, role, _ in before] == ["user", "assistant"], before
    assert before[0][2] == MESSAGE
    assert len(before[1][2]) > 20, before

    page.reload()
    assert page.url == session_url
    wait_connected(page, server)
    assert messages(page) == before
    expect(page.locator("#status")).to_have_attribute("data-busy", "false")
