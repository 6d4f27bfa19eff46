"""A real Chromium: staff watch a session's state change live in the inspector while it runs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.chromium import overflow
from tests.liveserver import LiveServer

PASSWORD = "inspector-test-password"
OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
# The box scrolls its content sideways: it is narrower than its content and lets it scroll.
SCROLLS = "box => box.scrollWidth > box.clientWidth && getComputedStyle(box).overflowX === 'auto'"


@pytest.fixture(scope="module")
def server(migrated_database: Path) -> Iterator[LiveServer]:
    # The realistic profile streams at a reading pace: a run lasts long enough to be watched.
    env = {"SIMULATOR_PROFILE": "realistic"}
    live = LiveServer(env, template=migrated_database, staff_password=PASSWORD).start()
    yield live
    live.stop()


@pytest.mark.timeout(90)
def test_staff_see_a_session_change_state_live_while_a_run_streams(
    browser: Browser, server: LiveServer
) -> None:
    staff = browser.new_context(base_url=server.base_url)
    staff.set_default_timeout(20_000)
    inspector = staff.new_page()
    inspector.goto("/admin/")
    inspector.fill("#id_username", "staff")
    inspector.fill("#id_password", PASSWORD)
    inspector.click("input[type=submit]")
    # Linked from the admin's home page, on one line (it wrapped one letter per line).
    live_sessions = inspector.locator("#inspector-link th a").first.bounding_box()
    assert live_sessions is not None
    assert live_sessions["height"] < 30, live_sessions
    inspector.click("#inspector-link a.section")
    inspector.wait_for_url("**/admin/inspector/")
    inspector.evaluate("window.loadedOnce = true")  # gone if the page ever reloads

    owner = browser.new_context(base_url=server.base_url)
    owner.set_default_timeout(20_000)
    tab = owner.new_page()
    tab.goto("/")
    tab.click("#new-session")
    tab.wait_for_url("**/sessions/*/")
    session_id = tab.url.rstrip("/").rsplit("/", 1)[1]
    expect(tab.locator("#status")).to_have_attribute("data-busy", "false")

    row = inspector.locator(f"#row-{session_id}")
    expect(row.locator(".sockets")).to_have_text("1")  # the owner's tab, live
    tab.fill("textarea[name=message]", "/chat 300 tides of the Atlantic coast")
    tab.click("#send")
    expect(row).to_have_attribute("data-state", "running")
    expect(row.locator(".upstream")).to_contain_text("connected · websocket")
    expect(row).to_have_attribute("data-state", "connected", timeout=45_000)
    expect(row.locator(".steps")).to_have_text("1")
    tab.close()
    expect(row).to_have_attribute("data-state", "idle grace")
    expect(row.locator(".sockets")).to_have_text("0")
    assert inspector.evaluate("window.loadedOnce") is True
    # The session's own page: its chain of responses and its upstream frames.
    row.locator("a").first.click()
    inspector.wait_for_url(f"**/admin/inspector/{session_id}/")
    expect(inspector.locator("#chain tr.link")).to_have_count(2)  # warm-up, then the reply
    expect(inspector.locator("#timeline")).to_contain_text("response.completed")
    # Each action's button says what it does, whole (they read "Rotat upstream socket").
    buttons = {
        "rotate": "Rotate the upstream socket",
        "drop": "Drop the upstream socket",
        "stop": "End the run",
        "close_sockets": "Close all browser sockets",
        "revoke_links": "Revoke the share links",
    }
    for name, label in buttons.items():
        expect(inspector.locator(f"#action-{name}")).to_have_text(label)
    # The reply builds on the warm-up: a hit ("miss: delta, partly uncached" before).
    expect(inspector.locator("#chain tr.link").last.locator(".cache")).to_contain_text("hit")
    # The latest run's waterfall in colour: its bars were black (no waterfall styles here).
    bar = inspector.locator("#chain .waterfall rect.model").last
    assert bar.evaluate("rect => getComputedStyle(rect).fill") != "rgb(0, 0, 0)"
    # The page fits its window: the chain's response ids made it 1,460 px wide at 1,280.
    assert overflow(inspector) == 0
    owner.close()
    # On a phone (390 px), neither page is wider than the window: the tables scroll in their
    # own box (the chain's ids, the list's eleven columns).
    inspector.set_viewport_size({"width": 390, "height": 844})
    assert inspector.evaluate(OVERFLOW) <= 0
    # Read in one page task, until it holds: the live page may be swapping the chain's table in
    # (a state report) just as the window narrows, and a box being replaced scrolls nothing.
    inspector.wait_for_function(
        f"() => [...document.querySelectorAll('#chain .table-scroll')].some({SCROLLS})",
        timeout=5_000,
    )
    inspector.goto("/admin/inspector/")
    expect(inspector.locator(f"#row-{session_id}")).to_have_count(1)
    assert inspector.evaluate(OVERFLOW) <= 0
    # Read in one task of the page: the list swaps its table in whole when a row changes (a
    # lease renewal's report), and a located table may be the one just swapped out.
    scrolls = f"() => ({SCROLLS})(document.getElementById('sessions').parentElement)"
    assert inspector.evaluate(scrolls) is True
    staff.close()


@pytest.mark.timeout(60)
def test_staff_see_the_embedded_simulator_answering_on_the_upstream_page(
    browser: Browser, server: LiveServer
) -> None:
    staff = browser.new_context(base_url=server.base_url, viewport={"width": 390, "height": 844})
    staff.set_default_timeout(20_000)
    page = staff.new_page()
    page.goto("/admin/inspector/upstream/")  # staff only: the admin's login first
    page.wait_for_url("**/admin/login/?next=/admin/inspector/upstream/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/inspector/upstream/")
    expect(page.locator("#upstream-where")).to_have_text("the embedded simulator")
    probe = page.locator("#upstream-probe")
    expect(probe).to_have_attribute("data-answering", "true")
    expect(probe).to_have_text(re.compile(r"^answering: GET /v1/models in \d+ ms$"))
    expect(page.locator("#upstream-model")).to_have_text("sim")
    expect(page.locator("#upstream-key")).to_contain_text("none needed")
    assert page.evaluate(OVERFLOW) <= 0
    page.goto("/admin/")  # linked from the admin's home page
    page.click("#upstream-link")
    page.wait_for_url("**/admin/inspector/upstream/")
    staff.close()
