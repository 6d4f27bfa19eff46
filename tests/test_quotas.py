"""Quotas: one visitor cannot exhaust the server or a paid API key (issue 11, item 8). Each
refusal is a clear message where the visitor is looking, and creates nothing."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from agents.models import Item, Session, Tool
from playground import quotas
from tests.services import REDIS_URL, require_redis
from tests.simserver import SimServer
from tests.tabs import Tab, new_browser, new_session
from tests.test_pages import new_session_of

KB = 1000


def error_text(response: Any) -> str:
    """The text of the page's error messages (alerts and form errors), unescaped enough."""
    html = response.content.decode()
    found = re.findall(r'class="error[^"]*"[^>]*>(.*?)</', html, re.S)
    found += re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', html, re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", text) for text in found).replace("&#x27;", "'")


def exported_file(client: Client) -> SimpleUploadedFile:
    session = new_session_of(client)
    data = client.get(f"/sessions/{session.pk}/export/").content
    return SimpleUploadedFile("session.json", data, "application/json")


# -- sessions ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_new_sessions_per_address_are_limited_per_hour(settings: Any) -> None:
    settings.QUOTA_NEW_SESSIONS_PER_HOUR = 3
    for _ in range(3):  # a fresh cookie each time: the address counts, not the cookie
        assert Client().post("/sessions/new/").status_code == 302
    response = Client().post("/sessions/new/")
    assert response.status_code == 429
    assert "Too many new sessions from your address" in error_text(response)
    assert Session.objects.count() == 3
    # Another address is not held back by this one.
    assert Client(REMOTE_ADDR="198.51.100.7").post("/sessions/new/").status_code == 302


@pytest.mark.django_db
def test_imports_count_as_new_sessions_of_the_address(settings: Any) -> None:
    browser = Client()
    upload = exported_file(browser)  # one new session
    settings.QUOTA_NEW_SESSIONS_PER_HOUR = 2
    assert browser.post("/sessions/import/", {"file": upload}).status_code == 302
    upload.seek(0)
    response = browser.post("/sessions/import/", {"file": upload})
    assert response.status_code == 429
    assert "Too many new sessions from your address" in error_text(response)
    assert Session.objects.count() == 2


@pytest.mark.django_db
def test_sessions_per_owner_are_limited(settings: Any) -> None:
    settings.QUOTA_SESSIONS_PER_OWNER = 2
    browser = Client()
    new_session_of(browser)
    upload = exported_file(browser)
    response = browser.post("/sessions/new/")
    assert response.status_code == 429
    assert "You already have 2 sessions" in error_text(response)
    response = browser.post("/sessions/import/", {"file": upload})
    assert response.status_code == 429
    assert "You already have 2 sessions" in error_text(response)
    assert Session.objects.count() == 2
    # Another browser has its own quota.
    assert Client().post("/sessions/new/").status_code == 302


# -- session settings and tools ----------------------------------------------------------------


def settings_form(**fields: Any) -> dict[str, Any]:
    return {
        "title": "T",
        "model": "sim",
        "instructions": "",
        "transport": "websocket",
        "max_steps": 25,
        **fields,
    }


@pytest.mark.django_db
def test_instructions_over_the_limit_are_refused() -> None:
    browser = Client()
    session = new_session_of(browser)
    url = f"/sessions/{session.pk}/settings/"
    response = browser.post(url, settings_form(instructions="x" * (2000 * KB)))
    assert response.status_code == 422
    assert "Instructions may have at most 100,000 characters" in error_text(response)
    assert Session.objects.get(pk=session.pk).instructions == ""
    assert browser.post(url, settings_form(instructions="x" * 100_000)).status_code == 200


def tool_form(prefix: str = "new", **fields: Any) -> dict[str, Any]:
    values = {"name": "lookup", "description": "", "mode": "mock", "mock_output": "ok", **fields}
    return {f"{prefix}-{name}": value for name, value in values.items()}


@pytest.mark.django_db
def test_tools_per_session_are_limited(settings: Any) -> None:
    settings.QUOTA_TOOLS_PER_SESSION = 3
    browser = Client()
    session = new_session_of(browser, tools=False)
    url = f"/sessions/{session.pk}/tools/"
    for number in range(3):
        assert browser.post(url, tool_form(name=f"tool_{number}")).status_code == 200
    response = browser.post(url, tool_form(name="one_more"))
    assert response.status_code == 422
    assert "This session already has 3 tools" in error_text(response)
    assert Tool.objects.filter(session=session).count() == 3
    # Editing a tool at the limit still works.
    tool = Tool.objects.get(session=session, name="tool_0")
    edit = tool_form(f"t{tool.pk}", name="tool_0", mock_output="changed")
    assert browser.post(f"{url}{tool.pk}/", edit).status_code == 200
    assert Tool.objects.get(pk=tool.pk).mock_output == "changed"


@pytest.mark.django_db
def test_the_built_in_tools_of_a_new_session_stay_within_the_limit(settings: Any) -> None:
    settings.QUOTA_TOOLS_PER_SESSION = 2
    browser = Client()
    session = new_session_of(browser)
    assert list(session.tools.values_list("name", flat=True)) == ["calculator", "current_time"]
    response = browser.post(f"/sessions/{session.pk}/tools/", tool_form())
    assert response.status_code == 422
    assert "This session already has 2 tools" in error_text(response)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "size", "message"),
    [
        ("description", 100 * KB, "The description may have at most 4,000 characters"),
        ("mock_output", 100 * KB, "The mock output may have at most 20,000 characters"),
        ("parameters", 100 * KB, "The parameters may have at most 20,000 characters"),
        ("name", 65, "Ensure this value has at most 64 characters"),
    ],
)
def test_tool_fields_over_their_limit_are_refused(field: str, size: int, message: str) -> None:
    browser = Client()
    session = new_session_of(browser, tools=False)
    if field == "parameters":  # valid JSON of that size
        pad = "x" * size
        value = json.dumps({"type": "object", "description": pad, "properties": {}})
    else:
        value = "x" * size
    response = browser.post(f"/sessions/{session.pk}/tools/", tool_form(**{field: value}))
    assert response.status_code == 422
    assert message in error_text(response)
    assert not Tool.objects.filter(session=session).exists()


@pytest.mark.django_db
def test_an_import_over_the_limits_is_refused(settings: Any) -> None:
    browser = Client()
    session = new_session_of(browser, tools=False)
    data = json.loads(browser.get(f"/sessions/{session.pk}/export/").content)
    settings.QUOTA_TOOLS_PER_SESSION = 2
    tool = {"name": "t", "description": "", "parameters": {}, "mode": "mock", "mock_output": "ok"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"session": {**data["session"], "instructions": "x" * 100_001}}, "Instructions may"),
        ({"tools": [{**tool, "name": f"t{n}"} for n in range(3)]}, "at most 2 tools"),
        ({"tools": [{**tool, "description": "x" * 4001}]}, "tools[0].description may"),
        ({"tools": [{**tool, "mock_output": "x" * 20_001}]}, "tools[0].mock_output may"),
    ]
    for change, message in cases:
        upload = SimpleUploadedFile("s.json", json.dumps({**data, **change}).encode())
        response = browser.post("/sessions/import/", {"file": upload})
        assert response.status_code == 422, message
        assert message in error_text(response)
    assert Session.objects.count() == 1


# -- runs ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("runners")
async def test_runs_per_minute_are_refused_on_the_socket(
    settings: Any, sim_server: SimServer, use_upstream: Callable[[SimServer], SimServer]
) -> None:
    use_upstream(sim_server)
    settings.QUOTA_RUNS_PER_MINUTE = 2
    browser = await new_browser()
    session = await new_session(browser)
    tab = await Tab(str(session.pk), browser).open()
    await tab.turn("/chat 3 one")
    await tab.turn("/chat 3 two")
    await tab.send("/chat 3 three")
    notice = await tab.until(r'id="notice"', wait=5)
    await tab.close()
    assert 'data-code="rate_limited"' in notice
    assert "at most 2 runs a minute" in notice
    users = Item.objects.filter(session=session, data__role="user")
    assert [item.text async for item in users] == ["/chat 3 one", "/chat 3 two"]


# -- the counter ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_the_window_counter_counts_per_key_in_memory_and_in_redis(
    settings: Any, backend: str
) -> None:
    if backend == "redis":
        require_redis()
        settings.REDIS_URL = REDIS_URL
    counter = quotas.WindowCounter(f"playground:test-counter:{secrets.token_hex(4)}:")
    try:
        assert await counter.count("a", 60) == 0
        assert [await counter.add("a", 60) for _ in range(3)] == [1, 2, 3]
        assert await counter.count("a", 60) == 3
        assert await counter.count("b", 60) == 0
    finally:
        if backend == "redis":
            from agents.live.store import redis_client

            client = redis_client()
            await client.delete(*(counter.prefix + key for key in "ab"))
            await client.aclose()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("runners")
async def test_runs_per_address_are_refused_across_sessions(
    settings: Any, sim_server: SimServer, use_upstream: Callable[[SimServer], SimServer]
) -> None:
    """One visitor cannot spread runs over many sessions (or browsers) to drain the key."""
    use_upstream(sim_server)
    settings.QUOTA_RUNS_PER_ADDRESS_PER_MINUTE = 2
    tabs = []
    for number in range(3):
        browser = await new_browser()  # a fresh cookie each time: the address still counts
        session = await new_session(browser)
        tabs.append(await Tab(str(session.pk), browser).open())
        if number < 2:
            await tabs[-1].turn(f"/chat 3 run {number}")
    await tabs[2].send("/chat 3 one too many")
    notice = await tabs[2].until(r'id="notice"', wait=5)
    for tab in tabs:
        await tab.close()
    assert 'data-code="rate_limited"' in notice
    assert "at most 2 runs a minute from your address" in notice
    assert not await Item.objects.filter(session__pk=tabs[2].session_id).aexists()
