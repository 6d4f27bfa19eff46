"""The session page as a user meets it in Chromium: every change it accepts or refuses says so
where the user is looking, and what the user chose is what the next step uses."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.chromium import new_session_page, overflow
from tests.liveserver import LiveServer


@pytest.fixture(scope="module")
def live(migrated_database: Path) -> Iterator[LiveServer]:
    server = LiveServer(template=migrated_database).start()
    yield server
    server.stop()


@pytest.fixture
def page(browser: Browser, live: LiveServer) -> Iterator[Page]:
    tab = new_session_page(browser, live)
    yield tab
    tab.context.close()


def fill_unchecked(page: Page, text: str) -> None:
    """Past the form's own checks, as a script or an old page would."""
    page.locator("textarea[name=message]").evaluate("(box, text) => { box.value = text; }", text)


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


@pytest.mark.timeout(60)
def test_an_info_notice_goes_by_itself(page: Page) -> None:
    save_settings(page)
    notice = page.locator("#notice")
    expect(notice).to_contain_text("Settings saved")
    expect(notice).to_have_text("", timeout=10_000)  # it stayed forever


@pytest.mark.timeout(60)
def test_an_error_notice_goes_when_dismissed_or_at_the_next_message(page: Page) -> None:
    notice = page.locator("#notice")
    too_long = "x" * 100_001
    page.locator("textarea[name=message]").evaluate(
        "(box, text) => { box.value = text; }", too_long
    )
    page.click("#send")
    expect(notice).to_contain_text("Messages are limited to 100000 chars.")
    notice.locator(".dismiss").click()
    expect(notice).to_have_text("")

    page.locator("textarea[name=message]").evaluate(
        "(box, text) => { box.value = text; }", too_long
    )
    page.click("#send")
    expect(notice).to_contain_text("Messages are limited")
    send(page, "/chat 3 short enough", 0)
    expect(notice).to_have_text("")


@pytest.mark.timeout(60)
def test_a_strangers_session_is_a_page_that_says_so(browser: Browser, page: Page) -> None:
    stranger = browser.new_context(base_url=page.url.split("/sessions/")[0])
    tab = stranger.new_page()
    response = tab.goto(page.url)
    assert response is not None
    assert response.status == 404
    expect(tab.locator("h1")).to_have_text("This session is not here")
    expect(tab.locator("body")).not_to_contain_text("URLconf")  # Django's debug page
    expect(tab.get_by_role("link", name="Start a new session")).to_be_visible()
    stranger.close()


TOO_WIDE = """[...document.querySelectorAll("body *")]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
  .map(e => `${e.tagName}#${e.id}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`)
  .slice(0, 10)"""


def too_wide(page: Page) -> list[str]:
    """The first elements that reach past the window's right edge (for a failure's message)."""
    found: list[str] = page.evaluate(TOO_WIDE)
    return found


@pytest.mark.timeout(60)
def test_a_new_share_link_fits_the_page_and_copies_in_one_click(page: Page) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.click("#share-create")
    link = page.locator("#share-url")
    expect(link).to_have_value(re.compile(r"/s/#"))
    expect(page.locator("#share .share-links tbody tr")).to_have_count(1)
    assert overflow(page) == 0, too_wide(page)  # the links' table made it 1,337 px at 1,280
    page.locator("#share button.copy").click()
    expect(page.locator("#share button.copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == link.input_value()


@pytest.mark.timeout(60)
def test_the_session_page_fits_a_phone(page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.click("#share-create")
    expect(page.locator("#share .share-links tbody tr")).to_have_count(1)
    assert overflow(page) == 0, too_wide(page)


@pytest.mark.timeout(60)
def test_enter_sends_and_shift_enter_is_a_new_line(page: Page) -> None:
    box = page.locator("textarea[name=message]")
    box.click()
    page.keyboard.type("/chat 3 first line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    expect(box).to_have_value("/chat 3 first line\nsecond line")
    page.keyboard.press("Enter")
    expect(page.locator("#transcript .item.message.user .body")).to_contain_text("second line")
    expect(page.locator("#transcript .item.message.assistant.completed")).to_have_count(1)
    expect(box).to_have_value("")


@pytest.mark.timeout(60)
def test_the_page_shows_no_template_source(page: Page) -> None:
    """A Django comment spans one line: a longer one showed as text. (``{{name}}`` is the mock
    output's own placeholder, in its help text.)"""
    for marker in ("{#", "#}", "{%", "%}"):
        expect(page.locator("body")).not_to_contain_text(marker)


@pytest.fixture(scope="module")
def reading_pace(migrated_database: Path) -> Iterator[LiveServer]:
    """The realistic profile streams at a reading pace: a reply lasts long enough to stop."""
    server = LiveServer({"SIMULATOR_PROFILE": "realistic"}, template=migrated_database).start()
    yield server
    server.stop()


@pytest.mark.timeout(90)
def test_a_stopped_step_says_how_long_it_streamed(
    browser: Browser, reading_pace: LiveServer
) -> None:
    page = new_session_page(browser, reading_pace)
    page.fill("textarea[name=message]", "/chat 400 the tides of the Atlantic coast")
    page.click("#send")
    expect(page.locator("#transcript .item.live .streaming")).not_to_have_text("")
    # Send has become Stop, in the same row.
    expect(page.locator("#send")).to_be_hidden()
    expect(page.locator(".composer-row #stop")).to_be_visible()
    page.wait_for_timeout(1_500)
    page.click("#stop")
    expect(page.locator("#status")).to_have_attribute("data-busy", "false")
    step = page.locator("#transcript .step").last
    expect(step).to_contain_text("stopped")
    milliseconds = int(re.search(r"· (\d+) ms ·", step.inner_text()).group(1))  # type: ignore[union-attr]
    assert milliseconds >= 1_000, step.inner_text()  # it read "0 ms" after 2.5 s of streaming
    expect(step).to_contain_text("usage not reported")  # not "0 in (0 cached) · 0 out"
    page.reload()  # the run's waterfall as the database keeps it
    bar = page.locator(".waterfall rect.model").last
    assert float(str(bar.get_attribute("width"))) > 0
    page.context.close()


@pytest.mark.timeout(90)
def test_the_live_step_lines_show_the_tool_time_as_a_reload_does(page: Page) -> None:
    page.locator("#tools details.new summary").click()
    page.fill("#id_new-name", "tide_table")
    page.fill(
        "#id_new-parameters", '{"type": "object", "properties": {"port": {"type": "string"}}}'
    )
    page.fill("#id_new-mock_output", "High water at 06:12")
    page.locator("#tools details.new button[type=submit]").click()
    names = page.locator("#tools details.tool:not(.new) summary code")
    expect(names).to_have_text(["calculator", "current_time", "notes", "tide_table"])
    page.fill("textarea[name=message]", "/lookup the tides at Brest")
    page.click("#send")
    expect(page.locator("#transcript .item.message.assistant.completed")).to_have_count(1)
    expect(page.locator("#status")).to_have_attribute("data-busy", "false")
    live = page.locator("#transcript .step").all_inner_texts()
    assert any(" · tools " in line for line in live), live  # only a reload showed it
    # What each step and the run cost, at the simulator's prices ("sim": like gpt-5-mini).
    assert all(re.search(r" · \$0\.\d+", line) for line in live), live
    expect(page.locator(".waterfall figcaption")).to_contain_text(re.compile(r"ms, \$0\.\d+"))
    page.reload()
    expect(page.locator("#status")).to_have_attribute("data-busy", "false")
    assert page.locator("#transcript .step").all_inner_texts() == live


CODE = 'def tide(port):\n    return f"High water at {port}"'
TRANSCRIPT = [
    {"type": "message", "role": "user", "content": "Tides at Brest?"},
    {"type": "function_call", "call_id": "call_1", "name": "tide_table",
     "arguments": '{"port": "Brest"}'},
    {"type": "function_call_output", "call_id": "call_1", "output": "High water at 06:12"},
    {"type": "message", "role": "assistant", "content": [{"type": "output_text",
     "text": f"High water is at 06:12.\n\n```python\n{CODE}\n```"}]},
]  # fmt: skip


def imported(page: Page, tmp_path: Path) -> None:
    """A new session from a file: a tool call, its output, and a reply with a code block."""
    items = [{"position": n, "data": data} for n, data in enumerate(TRANSCRIPT)]
    document = {
        "format": "agent-playground.session",
        "version": 1,
        "session": {"title": "Imported tides", "model": "sim"},
        "tools": [],
        "steps": [],
        "items": items,
    }
    path = tmp_path / "session.json"
    path.write_text(json.dumps(document))
    page.goto("/")
    page.set_input_files("#import input[type=file]", str(path))
    page.locator("#import button[type=submit]").click()
    page.wait_for_url("**/sessions/*/")
    expect(page.locator("#status")).to_have_attribute("data-busy", "false")


def clipboard(page: Page) -> str:
    text: str = page.evaluate("navigator.clipboard.readText()")
    return text


@pytest.mark.timeout(60)
def test_messages_code_blocks_and_tool_calls_copy_in_one_click(page: Page, tmp_path: Path) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    imported(page, tmp_path)
    reply = page.locator("#transcript .item.message.assistant")
    reply.locator(".who button.copy").click()
    expect(reply.locator(".who button.copy")).to_have_text("Copied")
    assert clipboard(page).startswith("High water is at 06:12.")
    reply.locator(".code-block button.copy").click()
    assert clipboard(page).strip() == CODE
    page.locator("#transcript .item.function_call button.copy").click()
    assert clipboard(page) == 'tide_table({"port": "Brest"})'  # the call as shown
    page.locator("#transcript .item.function_call_output button.copy").click()
    assert clipboard(page) == "High water at 06:12"


# The end of the transcript is in view (above the composer bar, which sits at the bottom).
AT_LATEST = "document.getElementById('transcript').getBoundingClientRect().bottom <= innerHeight"


@pytest.mark.timeout(90)
def test_the_page_follows_the_stream_until_the_user_scrolls_up(
    browser: Browser, reading_pace: LiveServer
) -> None:
    page = new_session_page(browser, reading_pace, {"width": 1280, "height": 500})
    page.fill("textarea[name=message]", "/chat 600 the tides of the Atlantic coast")
    page.click("#send")
    # The transcript grows past the window, and its end stays in view.
    page.wait_for_function("document.getElementById('transcript').scrollHeight > innerHeight")
    page.wait_for_timeout(500)
    assert page.evaluate(AT_LATEST)
    expect(page.locator("#jump-latest")).to_be_hidden()
    # The user scrolls up to read: the page stays put, and offers the way back.
    page.mouse.wheel(0, -2_000)
    page.wait_for_function("window.scrollY < 50")
    expect(page.locator("#jump-latest")).to_be_visible()
    page.wait_for_timeout(1_000)
    assert page.evaluate("window.scrollY") < 50
    page.click("#jump-latest")
    assert page.evaluate(AT_LATEST)
    expect(page.locator("#jump-latest")).to_be_hidden()
    page.click("#stop")
    page.context.close()


def rename_in_sidebar(page: Page, row: Locator, title: str) -> None:
    page.once("dialog", lambda dialog: dialog.accept(title))
    row.hover()
    row.locator("button.rename").click()


@pytest.mark.timeout(90)
def test_the_sidebar_lists_searches_renames_and_deletes_sessions(
    page: Page, live: LiveServer
) -> None:
    rows = page.locator("#session-list li")
    first = page.url
    rename_in_sidebar(page, rows.filter(has=page.locator("a[aria-current=page]")), "Tide tables")
    expect(page.locator("#session-list li.current a")).to_have_text("Tide tables")
    expect(page.locator("h1")).to_have_text("Tide tables")  # the page's own heading too

    page.click("#sidebar-new")
    page.wait_for_url(lambda url: url != first and "/sessions/" in url)
    expect(page.locator("#status")).to_have_attribute("data-busy", "false")
    rename_in_sidebar(page, page.locator("#session-list li.current"), "Harbour notes")
    expect(page.locator("#session-list li.current a")).to_have_text("Harbour notes")
    expect(page.locator("#session-list li.current a")).to_have_attribute("aria-current", "page")
    expect(rows).to_have_count(2)

    page.fill("#session-search", "tide")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("a")).to_have_text("Tide tables")
    page.fill("#session-search", "")
    expect(rows).to_have_count(2)

    page.once("dialog", lambda dialog: dialog.accept())
    other = rows.filter(has_text="Tide tables")
    other.hover()
    other.locator("button.delete").click()
    expect(rows).to_have_count(1)
    expect(rows.first.locator("a")).to_have_text("Harbour notes")

    page.once("dialog", lambda dialog: dialog.accept())
    current = page.locator("#session-list li.current")
    current.hover()  # the row's actions show (and take clicks) on hover
    current.locator("button.delete").click()
    page.wait_for_url(lambda url: "/sessions/" not in url)  # the page's own session is gone
    expect(page.locator("#sessions")).to_contain_text("No sessions yet.")
    # Their runners (each page's socket started one) end without a trace in the server's log.
    page.wait_for_timeout(500)
    assert "Traceback" not in live.output(), live.output()


@pytest.mark.timeout(60)
def test_the_theme_switches_between_system_light_and_dark_and_is_kept(page: Page) -> None:
    background = "getComputedStyle(document.body).backgroundColor"
    button = page.locator("#theme")
    expect(button).to_have_text("Theme: system")
    button.click()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    assert page.evaluate(background) == "rgb(255, 255, 255)"
    button.click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    expect(button).to_have_text("Theme: dark")
    dark = page.evaluate(background)
    assert dark != "rgb(255, 255, 255)"
    page.reload()  # kept, and applied before the page paints
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    assert page.evaluate(background) == dark
    button.click()  # back to the system's
    expect(page.locator("html")).not_to_have_attribute("data-theme", re.compile("."))


@pytest.mark.timeout(60)
def test_the_model_field_suggests_the_upstreams_models_and_keeps_free_text(page: Page) -> None:
    field = page.locator("#id_model")
    expect(field).to_have_attribute("list", "models")
    options = page.locator("datalist#models option")
    assert sorted(options.evaluate_all("all => all.map(option => option.value)")) == [
        "sim", "sim-large", "sim-mini"
    ]  # fmt: skip
    page.fill("#id_model", "sim-mini")
    save_settings(page)
    expect(page.locator("#settings .saved")).to_be_visible()
    page.reload()
    expect(page.locator("#id_model")).to_have_value("sim-mini")
    page.fill("#id_model", "my-own-gateway-model")  # not in the list: still free text
    save_settings(page)
    expect(page.locator("#settings .saved")).to_be_visible()


@pytest.mark.timeout(90)
def test_presets_add_tools_in_one_click_and_a_form_shows_its_modes_fields(page: Page) -> None:
    names = page.locator("#tools details.tool:not(.new) summary code")
    expect(names).to_have_text(["calculator", "current_time", "notes"])  # a new session's
    page.get_by_role("button", name="+ Mock weather").click()
    expect(names).to_have_text(["calculator", "current_time", "get_weather", "notes"])
    expect(page.locator("#tools details.tool:not(.new) summary").first).to_contain_text("built-in")
    page.fill("textarea[name=message]", "calculate 17*23+4")
    page.click("#send")
    # The calculator, named by a word, is called with what the user wrote, and answers.
    expect(page.locator("#transcript .item.function_call summary")).to_contain_text("calculator")
    expect(page.locator("#transcript .item.function_call_output")).to_contain_text("395")
    expect(page.locator("#transcript .item.message.assistant.completed")).to_have_count(1)
    expect(page.locator("#status")).to_have_attribute("data-busy", "false")

    page.locator("#tools details.new summary").click()
    form = page.locator("#tools details.new form")
    page.select_option("#id_new-mode", "builtin")
    expect(form.locator(".field-builtin")).to_be_visible()
    expect(form.locator(".field-parameters")).to_be_hidden()
    expect(form.locator(".field-mock_output")).to_be_hidden()
    page.select_option("#id_new-mode", "mock")
    expect(form.locator(".field-builtin")).to_be_hidden()
    expect(form.locator(".field-mock_output")).to_be_visible()
    page.select_option("#id_new-mode", "manual")
    expect(form.locator(".field-mock_output")).to_be_hidden()
    expect(form.locator(".field-parameters")).to_be_visible()


@pytest.mark.timeout(60)
def test_the_composer_counts_characters_near_the_limit(page: Page) -> None:
    count = page.locator("#char-count")
    box = page.locator("textarea[name=message]")
    box.fill("x" * 1_000)
    expect(count).to_be_hidden()
    box.fill("x" * 95_000)
    expect(count).to_have_text("95,000 / 100,000")
    expect(count).not_to_have_class(re.compile("over"))
    box.fill("x" * 100_001)
    expect(count).to_have_text("100,001 / 100,000")
    expect(count).to_have_class(re.compile("over"))


@pytest.mark.timeout(90)
def test_a_new_sessions_first_message_calls_its_tools_and_titles_it_live(page: Page) -> None:
    """ "New session" turns the built-in tools on: the home page's `/research 3 tides` makes
    three tool calls at once; and the message titles the session in the heading, the tab's
    title and the sidebar, without a reload."""
    expect(page.locator("h1")).to_have_text("New session")
    page.fill("textarea[name=message]", "/research 3 tides")
    page.click("#send")
    expect(page.locator("#transcript .item.message.assistant.completed")).to_have_count(1)
    calls = page.locator("#transcript .item.function_call summary")
    expect(calls).to_have_count(3)
    expect(calls).to_contain_text(["calculator", "current_time", "notes"])
    expect(page.locator("#transcript .item.function_call_output")).to_have_count(3)
    expect(page.locator("h1")).to_have_text("/research 3 tides")
    expect(page).to_have_title("/research 3 tides · Agent playground")
    expect(page.locator("#session-list li.current a")).to_have_text("/research 3 tides")
    expect(page.locator("#id_title")).to_have_value("/research 3 tides")  # a save keeps it


@pytest.mark.timeout(90)
def test_a_pinned_session_moves_to_the_top_and_stays_there(page: Page) -> None:
    first = page.url
    older_path = urlsplit(first).path
    page.click("#sidebar-new")
    page.wait_for_url(lambda url: url != first and "/sessions/" in url)
    rows = page.locator("#session-list li")
    expect(rows).to_have_count(2)
    older = rows.filter(has=page.locator(f'a[href="{older_path}"]'))
    expect(rows.first).to_have_class("current")  # the newest first
    older.hover()
    older.get_by_role("button", name="Pin New session").click()
    expect(rows.first.locator("a")).to_have_attribute("href", older_path)
    expect(rows.first.locator(".pin")).to_have_attribute("aria-label", "Pinned")
    expect(rows.nth(1)).to_have_class("current")
    page.reload()
    expect(rows.first.locator("a")).to_have_attribute("href", older_path)
    expect(rows.first.locator(".pin")).to_be_visible()
    rows.first.hover()
    rows.first.get_by_role("button", name="Unpin New session").click()
    expect(rows.first).to_have_class("current")
    expect(page.locator("#session-list .pin")).to_have_count(0)
