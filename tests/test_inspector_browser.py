"""A real Chromium: staff watch a session's state change live in the inspector while it runs."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import Browser, expect

from devtools.processes import child_env, manage, run
from tests.liveserver import LiveServer

PASSWORD = "inspector-test-password"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    database = f"sqlite:///{tmp_path_factory.mktemp('inspector') / 'db.sqlite3'}"
    run(manage("migrate", "--no-input"), child_env(DATABASE_URL=database))  # as `make run` does
    # The realistic profile streams at a reading pace: a run lasts long enough to be watched.
    live = LiveServer({"SIMULATOR_PROFILE": "realistic", "DATABASE_URL": database}, migrate=False)
    superuser = child_env(
        DATABASE_URL=database,
        DJANGO_SUPERUSER_USERNAME="staff",
        DJANGO_SUPERUSER_EMAIL="staff@example.com",
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
    )
    # The docs' one command for a staff account, without its prompts, while daphne starts: two
    # Django processes of ~3 s of CPU each, side by side.
    with ThreadPoolExecutor(max_workers=1) as pool:
        created = pool.submit(run, manage("createsuperuser", "--noinput"), superuser)
        live.start()
        try:
            created.result()
        except BaseException:
            live.stop()
            raise
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
    inspector.click("#inspector-link a.section")  # linked from the admin's home page
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
    owner.close()
    staff.close()
