"""The pages as a user sees them, at 1280 and 390 px wide: the home page, a session mid-run, a
finished tool run with its waterfall, a share viewer and the inspector; then a session's branches
with a message's editor open, and the compare page after a race (docs/branches.md). Each must fit
its width (no horizontal scrolling). ``make screenshots`` (``SCREENSHOTS=update``) writes them to
docs/img/, where the README and the docs show them; otherwise they go to a temporary folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.chromium import new_session_page, overflow
from tests.liveserver import LiveServer

PASSWORD = "screenshots-staff-password"
DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
WIDTHS = {1280: 860, 390: 844}
TOOL = '{"type": "object", "properties": {"port": {"type": "string"}}}'


@pytest.fixture(scope="module")
def live(migrated_database: Path) -> Iterator[LiveServer]:
    env = {"SIMULATOR_PROFILE": "realistic"}  # a run lasts long enough to be caught mid-way
    server = LiveServer(env, template=migrated_database, staff_password=PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return DOCS_IMG if os.environ.get("SCREENSHOTS") == "update" else tmp_path


def shoot(page: Page, folder: Path, name: str, width: int, full_page: bool = False) -> None:
    too_wide = overflow(page)
    assert too_wide == 0, f"{name} at {width} px is {too_wide} px too wide"
    page.screenshot(path=folder / f"{name}-{width}.png", full_page=full_page)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("width", list(WIDTHS))
def test_every_page_fits_and_is_shot(
    browser: Browser, live: LiveServer, folder: Path, width: int
) -> None:
    viewport: ViewportSize = {"width": width, "height": WIDTHS[width]}
    context = browser.new_context(base_url=live.base_url, viewport=viewport)
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto("/")
    shoot(page, folder, "home", width)

    page.click("#new-session")
    page.wait_for_url("**/sessions/*/")
    expect(page.locator("#status")).to_have_attribute("data-busy", "false")
    page.fill("#id_title", "Tides at Brest")
    page.locator("#settings button[type=submit]").click()
    expect(page.locator("h1")).to_have_text("Tides at Brest")
    expect(page.locator("#tools details.tool:not(.new)")).to_have_count(3)  # the built-ins
    page.locator("#tools details.new summary").click()
    page.fill("#id_new-name", "tide_table")
    page.fill("#id_new-parameters", TOOL)
    page.fill("#id_new-mock_output", "High water at 06:12, low water at 12:31")
    page.locator("#tools details.new button[type=submit]").click()
    expect(page.locator("#tools details.tool:not(.new)")).to_have_count(4)
    page.fill("textarea[name=message]", "/chat 800 the tides along the Atlantic coast")
    page.keyboard.press("Enter")
    expect(page.locator("#transcript .item.live .streaming")).not_to_have_text("")
    page.wait_for_timeout(1_500)
    shoot(page, folder, "session-running", width)
    page.click("#stop")
    expect(page.locator("#status")).to_have_attribute("data-busy", "false")

    page.fill("textarea[name=message]", "/research 3 tide tables at Brest")
    page.keyboard.press("Enter")
    expect(page.locator("#transcript .item.message.assistant.completed")).to_have_count(1)
    expect(page.locator("#status")).to_have_attribute("data-busy", "false")
    page.locator(".waterfall").last.scroll_into_view_if_needed()
    shoot(page, folder, "session-tools", width)

    page.click("#share-create")
    link = page.locator("#share-url").input_value()
    viewer = context.new_page()
    viewer.goto(link)
    expect(viewer.locator("#shared h1[data-title]")).to_have_text("Tides at Brest")
    expect(viewer.locator("#transcript .waterfall").last).to_be_visible()
    shoot(viewer, folder, "viewer", width)

    staff = browser.new_context(base_url=live.base_url, viewport=viewport)
    inspector = staff.new_page()
    inspector.goto("/admin/")
    inspector.fill("#id_username", "staff")
    inspector.fill("#id_password", PASSWORD)
    inspector.click("input[type=submit]")
    session_id = page.url.rstrip("/").rsplit("/", 1)[1]
    inspector.goto(f"/admin/inspector/{session_id}/")
    expect(inspector.locator("#chain tr.link").first).to_be_visible()
    shoot(inspector, folder, "inspector", width)
    staff.close()
    context.close()


USER = "#transcript .item.message.user"
REPLY = "#transcript .item.message.assistant"
# The race's task, short: four research calls (the form's `prompt`; the default is twenty).
RACE_PROMPT = "/research 4 tides"


def idle(page: Page, replies: int) -> None:
    expect(page.locator(f"{REPLY}.completed")).to_have_count(replies)
    expect(page.locator("#transcript .item.live")).to_have_count(0)
    expect(page.locator("#status")).to_have_attribute("data-busy", "false")


@pytest.mark.timeout(180)
def test_branches_and_a_race_are_shot(browser: Browser, live: LiveServer, folder: Path) -> None:
    viewport: ViewportSize = {"width": 1280, "height": WIDTHS[1280]}
    page = new_session_page(browser, live, viewport)
    context = page.context
    context.set_default_timeout(30_000)
    page.fill("#id_title", "Tide tables")
    page.locator("#settings button[type=submit]").click()
    expect(page.locator("h1")).to_have_text("Tide tables")

    # A reply regenerated (its switcher), a fork of it, then a second message edited.
    page.fill("textarea[name=message]", "/chat 40 when is high water at Brest?")
    page.keyboard.press("Enter")
    idle(page, 1)
    reply = page.locator(REPLY).first
    reply.hover()
    reply.locator("form.regenerate button").click()
    expect(reply.locator(".who .branches .count")).to_have_text("2/2")
    idle(page, 1)
    source = page.url
    reply.hover()
    reply.locator("button.fork").click()
    expect(page.locator("h1")).to_have_text("Fork of Tide tables")
    page.goto(source)
    expect(page.locator(".lineage")).to_contain_text("Forks: Fork of Tide tables")
    expect(page.locator("#status")).to_have_attribute("data-busy", "false")
    page.fill("textarea[name=message]", "/chat 30 and at Saint-Malo?")
    page.keyboard.press("Enter")
    idle(page, 2)
    message = page.locator(USER).last
    message.hover()
    message.locator("button.edit").click()
    box = message.locator("form.edit-form textarea")
    box.fill("/chat 30 and at Cherbourg?")
    box.press("Enter")
    expect(message.locator(".who .branches .count")).to_have_text("2/2")
    idle(page, 2)
    message.hover()
    message.locator("button.edit").click()
    box.fill("/chat 30 and at Cherbourg, in the spring tides?")
    # From the top: the title, its lineage ("Forks: …"), both versions' switchers, the editor.
    page.locator("#session-title").evaluate(
        """title => { for (let box = title; box; box = box.parentElement) box.scrollTop = 0; }"""
    )
    expect(box).to_be_in_viewport()
    shoot(page, folder, "branches", 1280)
    message.get_by_role("button", name="Cancel").click()

    # The race, on a short task (the form takes a prompt), started from the Experiments box.
    page.locator("#race-link").evaluate(
        """(button, prompt) => {
            const field = Object.assign(document.createElement("input"),
                {type: "hidden", name: "prompt", value: prompt});
            button.form.append(field);
        }""",
        RACE_PROMPT,
    )
    page.click("#race-link")
    page.wait_for_url("**/compare/*/?start=1")
    expect(page.locator("#status")).to_have_attribute("data-busy", "true")
    expect(page.locator("#status")).to_have_attribute("data-busy", "false", timeout=60_000)
    expect(page.locator(".results-table tbody tr")).to_have_count(3)
    expect(page.locator(".waterfall.shared")).to_be_visible()
    shoot(page, folder, "compare", 1280, full_page=True)
    page.set_viewport_size({"width": 390, "height": WIDTHS[390]})
    page.locator(".results").scroll_into_view_if_needed()
    shoot(page, folder, "compare", 390)
    context.close()
