"""Branches as a user meets them in Chromium: Edit a message, Regenerate a reply, switch between
the versions with the "n/m" switcher; every tab of the session and a share link's viewer follow
the branch shown, a reload mid-stream on a later branch resumes it, and the controls fit a
phone."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, ViewportSize, expect

from tests.chromium import DEFAULT_VIEWPORT, new_session_page, overflow
from tests.liveserver import LiveServer

USER = "#transcript .item.message.user"
REPLY = "#transcript .item.message.assistant"
EDITING = re.compile(r"\bediting\b")
PHONE: ViewportSize = {"width": 390, "height": 844}
# Recorded from each page's first byte: a page has its socket once it opened and applied a frame.
PROBE = """
window.probe = {opens: 0, messages: 0};
document.addEventListener("htmx:wsOpen", () => { window.probe.opens += 1; });
document.addEventListener("htmx:wsAfterMessage", () => { window.probe.messages += 1; });
"""
CONNECTED = "window.probe.opens >= 1 && window.probe.messages >= 1"


@pytest.fixture(scope="module")
def live(migrated_database: Path) -> Iterator[LiveServer]:
    server = LiveServer(template=migrated_database).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def reading_pace(migrated_database: Path) -> Iterator[LiveServer]:
    """The realistic profile streams at a reading pace: `/chat 600` lasts seconds."""
    server = LiveServer({"SIMULATOR_PROFILE": "realistic"}, template=migrated_database).start()
    yield server
    server.stop()


def new_context(
    browser: Browser, server: LiveServer, viewport: ViewportSize = DEFAULT_VIEWPORT
) -> BrowserContext:
    """A browser of its own (its own cookies: another visitor), every page of it probed."""
    context = browser.new_context(base_url=server.base_url, viewport=viewport)
    context.set_default_timeout(20_000)
    context.add_init_script(PROBE)
    return context


def open_session(context: BrowserContext, url: str | None = None) -> Page:
    """A tab on the session at ``url`` (None: a new session), its socket connected, idle."""
    page = context.new_page()
    if url is None:
        page.goto("/")
        page.click("#new-session")
        page.wait_for_url("**/sessions/*/")
    else:
        page.goto(url)
    page.wait_for_function(CONNECTED)
    expect(page.locator("#status")).to_have_attribute("data-busy", "false")
    return page


def idle(page: Page, replies: int, timeout: float = 10_000) -> None:
    """The run is over: ``replies`` finished replies on the branch shown, nothing streaming."""
    expect(page.locator(f"{REPLY}.completed")).to_have_count(replies, timeout=timeout)
    expect(page.locator("#transcript .item.live")).to_have_count(0)
    expect(page.locator("#status")).to_have_attribute("data-busy", "false")


def send(page: Page, message: str, replies: int) -> None:
    """Send ``message`` from the composer and wait for its reply (``replies`` on the branch)."""
    page.fill("textarea[name=message]", message)
    page.click("#send")
    expect(page.locator(f"{USER} .body").last).to_have_text(message)
    idle(page, replies)


def switcher(item: Locator) -> Locator:
    return item.locator(".who .branches")


def previous(item: Locator) -> Locator:
    return switcher(item).get_by_role("button", name="Previous version")


def regenerate(page: Page, reply: Locator) -> None:
    reply.hover()  # the item's actions show on hover
    reply.locator("form.regenerate button").click()


def open_editor(message: Locator) -> Locator:
    """Click Edit on a user message: its editor's text box."""
    message.hover()
    message.locator("button.edit").click()
    box = message.locator("form.edit-form textarea")
    expect(box).to_be_visible()
    expect(box).to_be_focused()
    return box


def another(item_id: str) -> re.Pattern[str]:
    """Any item's id but ``item_id``."""
    return re.compile(rf"^(?!{item_id}$)item-\d+$")


def body_text(item: Locator) -> str:
    return item.locator(".body").inner_text()


@pytest.mark.timeout(90)
def test_an_edited_message_is_a_second_version_and_the_first_comes_back(
    browser: Browser, live: LiveServer
) -> None:
    page = new_session_page(browser, live)
    message, reply = page.locator(USER), page.locator(REPLY)
    send(page, "/chat 20 first", 1)
    first_reply = body_text(reply)
    expect(switcher(message)).to_have_count(0)  # one version: no switcher

    box = open_editor(message)
    expect(box).to_have_value("/chat 20 first")
    expect(message).to_have_class(EDITING)
    expect(message.locator(".body")).to_be_hidden()  # the editor takes the text's place
    box.fill("/chat 20 edited")
    box.press("Enter")
    expect(message.locator(".body")).to_have_text("/chat 20 edited")
    expect(message.locator("form.edit-form")).to_have_count(0)
    idle(page, 1)
    expect(switcher(message).locator(".count")).to_have_text("2/2")
    expect(switcher(message)).to_have_attribute("aria-label", "Version 2 of 2")
    expect(switcher(message).get_by_role("button", name="Next version")).to_be_disabled()
    edited_reply = body_text(reply)
    assert edited_reply != first_reply  # a reply to the edited message
    expect(message).to_have_count(1)  # the first version is not shown beside it

    previous(message).click()
    expect(switcher(message).locator(".count")).to_have_text("1/2")
    expect(message.locator(".body")).to_have_text("/chat 20 first")
    expect(reply.locator(".body")).to_have_text(first_reply)
    expect(previous(message)).to_be_disabled()
    expect(reply).to_have_count(1)

    # A second edit, cancelled: the editor goes, the text and the version stay.
    box = open_editor(message)
    expect(box).to_have_value("/chat 20 first")
    box.fill("/chat 20 never sent")
    message.get_by_role("button", name="Cancel").click()
    expect(message.locator("form.edit-form")).to_have_count(0)
    expect(message).not_to_have_class(EDITING)
    expect(message.locator(".body")).to_be_visible()
    expect(message.locator(".body")).to_have_text("/chat 20 first")
    expect(switcher(message).locator(".count")).to_have_text("1/2")
    expect(reply.locator(".body")).to_have_text(first_reply)
    page.context.close()


@pytest.mark.timeout(90)
def test_a_regenerate_and_a_switch_show_in_the_sessions_other_tab(
    browser: Browser, live: LiveServer
) -> None:
    context = new_context(browser, live)
    tab_a = open_session(context)
    tab_b = open_session(context, tab_a.url)  # the same session in a second tab
    send(tab_a, "/chat 20 hello", 1)
    reply_a, reply_b = tab_a.locator(REPLY), tab_b.locator(REPLY)
    # The simulator answers the same context with the same text: a regenerated reply reads as
    # the first one, and only its item (its id, its position) tells them apart.
    first = body_text(reply_a)
    first_id = reply_a.get_attribute("id")
    expect(reply_b.locator(".body")).to_have_text(first)  # tab B followed the run

    regenerate(tab_a, reply_a)
    for tab, reply in ((tab_a, reply_a), (tab_b, reply_b)):
        expect(switcher(reply).locator(".count")).to_have_text("2/2")
        idle(tab, 1)
    second = body_text(reply_a)
    second_id = reply_a.get_attribute("id")
    assert second_id != first_id  # another item: the regenerated reply
    expect(reply_b).to_have_id(str(second_id))
    expect(reply_b.locator(".body")).to_have_text(second)
    expect(tab_b.locator(USER)).to_have_count(1)  # the message is not repeated

    previous(reply_a).click()
    for reply in (reply_a, reply_b):
        expect(switcher(reply).locator(".count")).to_have_text("1/2")
        expect(reply).to_have_id(str(first_id))
        expect(reply.locator(".body")).to_have_text(first)
    context.close()


@pytest.mark.timeout(120)
def test_a_reload_mid_stream_on_a_later_branch_resumes_it_without_a_gap(
    browser: Browser, reading_pace: LiveServer
) -> None:
    context = new_context(browser, reading_pace)
    page = open_session(context)
    send(page, "/chat 20 hello", 1)
    reply = page.locator(REPLY)
    first_id = str(reply.get_attribute("id"))
    regenerate(page, reply)
    # The regenerated reply (whether its switcher shows live is the test above's to say).
    expect(reply).to_have_id(another(first_id))
    idle(page, 1)

    page.fill("textarea[name=message]", "/chat 600 the tides of the Atlantic coast")
    page.click("#send")
    expect(page.locator("#transcript .item.live .streaming")).not_to_have_text("")
    page.reload()
    page.wait_for_function(CONNECTED)
    # Still running after the reload (else it did not reload mid-stream), and streaming on.
    expect(page.locator("#status")).to_have_attribute("data-busy", "true")
    expect(page.locator("#transcript .item.live .streaming")).not_to_have_text("")
    idle(page, 2, timeout=60_000)  # `/chat 600` streams for about 6 s
    resumed = page.locator("#transcript .item").all_inner_texts()

    fresh = open_session(context, page.url)  # the branch as the database has it
    assert resumed == fresh.locator("#transcript .item").all_inner_texts()
    for tab in (page, fresh):
        expect(switcher(tab.locator(REPLY).first).locator(".count")).to_have_text("2/2")
        expect(tab.locator(f"{REPLY} .branches")).to_have_count(1)  # the new reply has one
    context.close()


def create_share_link(owner: Page) -> str:
    owner.click("#share-create")
    url = owner.locator("#share-url").input_value()
    assert "/s/#" in url, url
    return url


@pytest.mark.timeout(90)
def test_a_share_viewer_follows_the_owners_branch_without_its_controls(
    browser: Browser, live: LiveServer
) -> None:
    owner_context = new_context(browser, live)
    viewer_context = new_context(browser, live)  # another person's browser
    owner = open_session(owner_context)
    send(owner, "/chat 20 hello", 1)
    owner_reply = owner.locator(REPLY)
    first, first_id = body_text(owner_reply), str(owner_reply.get_attribute("id"))
    url = create_share_link(owner)
    viewer = viewer_context.new_page()
    viewer.goto(url)
    viewer.wait_for_function(CONNECTED)
    reply = viewer.locator(REPLY)
    expect(reply.locator(".body")).to_have_text(first)

    regenerate(owner, owner_reply)
    expect(switcher(owner_reply).locator(".count")).to_have_text("2/2")
    idle(owner, 1)
    second, second_id = body_text(owner_reply), str(owner_reply.get_attribute("id"))
    expect(switcher(reply).locator(".count")).to_have_text("2/2")
    expect(reply).to_have_id(second_id)  # the same text as the first: see the test above
    expect(reply.locator(".body")).to_have_text(second)
    expect(viewer.locator(REPLY)).to_have_count(1)
    # Read-only: no way to switch, edit or regenerate (none in the page, hidden or not).
    reply.hover()
    viewer.locator(USER).hover()
    for controls in (".branches button", ".item-actions", "button.edit", "form.regenerate"):
        expect(viewer.locator(f"#transcript {controls}")).to_have_count(0)

    previous(owner_reply).click()
    expect(switcher(owner_reply).locator(".count")).to_have_text("1/2")
    expect(switcher(reply).locator(".count")).to_have_text("1/2")
    expect(reply).to_have_id(first_id)
    expect(reply.locator(".body")).to_have_text(first)
    expect(viewer.locator("#transcript .branches button")).to_have_count(0)
    viewer_context.close()
    owner_context.close()


@pytest.mark.timeout(90)
def test_the_branch_controls_and_the_editor_fit_a_phone(browser: Browser, live: LiveServer) -> None:
    context = new_context(browser, live, PHONE)
    page = open_session(context)
    message, reply = page.locator(USER), page.locator(REPLY)
    send(page, "/chat 20 first", 1)
    box = open_editor(message)
    box.fill("/chat 20 a longer message, edited on a phone, that wraps in its editor")
    box.press("Enter")
    expect(switcher(message).locator(".count")).to_have_text("2/2")
    idle(page, 1)
    first_id = str(reply.get_attribute("id"))
    regenerate(page, reply)
    expect(reply).to_have_id(another(first_id))
    idle(page, 1)
    page.reload()  # the reply's switcher (whether it shows live: the tests above)
    page.wait_for_function(CONNECTED)
    expect(switcher(reply).locator(".count")).to_have_text("2/2")
    open_editor(message)
    assert overflow(page) == 0
    # Each control inside the window's width.
    for control in (
        previous(message),
        switcher(message).locator(".count"),
        previous(reply),
        message.get_by_role("button", name="Cancel"),
        message.get_by_role("button", name="Send", exact=True),
        message.locator("form.edit-form textarea"),
    ):
        control.scroll_into_view_if_needed()
        bounds = control.bounding_box()
        assert bounds is not None
        assert bounds["x"] >= 0, bounds
        assert bounds["x"] + bounds["width"] <= PHONE["width"], bounds
    editor = width(message.locator("form.edit-form"))
    conversation = width(page.locator("#transcript"))
    message.get_by_role("button", name="Cancel").click()
    previous(message).click()
    expect(switcher(message).locator(".count")).to_have_text("1/2")
    assert overflow(page) == 0
    # The editor takes the conversation's width (`.item.editing` in static/session.css), not
    # the width of the message's header row above it.
    assert editor == conversation, (editor, conversation)
    page.context.close()


def width(element: Locator) -> float:
    bounds = element.bounding_box()
    assert bounds is not None
    return bounds["width"]


@pytest.mark.timeout(90)
def test_a_tree_exports_and_imports_with_its_branch_and_a_fork_opens_a_new_session(
    browser: Browser, live: LiveServer, tmp_path: Path
) -> None:
    context = new_context(browser, live)
    page = open_session(context)
    send(page, "/chat 20 hello", 1)
    reply = page.locator(REPLY).first
    reply_id = reply.get_attribute("id") or ""
    regenerate(page, reply)
    expect(page.locator(REPLY).first).to_have_id(another(reply_id))
    idle(page, 1)
    expect(switcher(page.locator(REPLY).first).locator(".count")).to_have_text("2/2")
    previous(page.locator(REPLY).first).click()
    expect(switcher(page.locator(REPLY).first).locator(".count")).to_have_text("1/2")

    with page.expect_download() as download:
        page.click("#export")
    path = tmp_path / "tree.json"
    download.value.save_as(path)
    exported = json.loads(path.read_text())
    assert exported["version"] == 2
    assert [item["parent"] for item in exported["items"]] == [None, 0, 0]

    page.goto("/")
    page.set_input_files("#import input[type=file]", str(path))
    page.locator("#import button[type=submit]").click()
    page.wait_for_url("**/sessions/*/")
    imported_reply = page.locator(REPLY).first
    expect(switcher(imported_reply).locator(".count")).to_have_text("1/2")  # the same branch
    assert imported_reply.get_attribute("id") == reply_id
    tree_url = page.url

    # A version-1 file (no parents) imports as one line.
    exported["version"] = 1
    for item in exported["items"][:2]:
        del item["parent"]
    exported["items"] = exported["items"][:2]
    del exported["session"]["head"]
    for step in exported["steps"]:
        for name in ("route", "lane", "stored"):
            step.pop(name, None)
    old = tmp_path / "old.json"
    old.write_text(json.dumps(exported))
    page.goto("/")
    page.set_input_files("#import input[type=file]", str(old))
    page.locator("#import button[type=submit]").click()
    page.wait_for_url("**/sessions/*/")
    expect(page.locator(REPLY)).to_have_count(1)
    expect(page.locator("#transcript .branches")).to_have_count(0)

    # Fork the imported tree's reply: a new session, linked both ways.
    page.goto(tree_url)
    source = page.url
    page.locator(REPLY).first.hover()
    page.locator(REPLY).first.locator("button.fork").click()
    page.wait_for_url(lambda url: url != source and "/sessions/" in url)
    expect(page.locator("h1#session-title")).to_contain_text("Fork of")
    expect(page.locator(".lineage")).to_contain_text("Forked from")
    expect(page.locator(REPLY)).to_have_count(1)
    context.close()
