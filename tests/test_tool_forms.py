"""The tools panel: adding, editing and deleting a session's tools through the HTTP views."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from django.test import Client

from agents.models import Session, Tool
from agents.tools.builtins import BUILTINS
from tests.test_pages import new_session_of

pytestmark = pytest.mark.django_db

Response = Any  # what django.test.Client returns

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}


def tools_url(session: Session) -> str:
    return f"/sessions/{session.pk}/tools/"


def tool_url(tool: Tool) -> str:
    return f"/sessions/{tool.session_id}/tools/{tool.pk}/"


def fields(prefix: str = "new", **values: Any) -> dict[str, Any]:
    """A tool form's POST data under ``prefix``; a mock weather tool unless told otherwise.

    A value of False leaves the field out, as a browser does with an unticked checkbox.
    """
    data: dict[str, Any] = {
        "name": "weather",
        "description": "The weather in a city.",
        "mode": "mock",
        "builtin": "",
        "parameters": json.dumps(WEATHER_SCHEMA),
        "mock_output": '{"city": "{{city}}", "sky": "clear"}',
        **values,
    }
    return {f"{prefix}-{key}": value for key, value in data.items() if value is not False}


def text(response: Response) -> str:
    return html.unescape(response.content.decode())


def assert_tools_panel(response: Response) -> str:
    page = text(response)
    assert page.startswith('<section id="tools" class="tools">'), page[:200]
    assert page.rstrip().endswith("</section>")
    return page


@pytest.fixture
def browser() -> Client:
    return Client()


@pytest.fixture
def session(browser: Client) -> Session:
    return new_session_of(browser, tools=False)  # the panel starts empty


def edit_form(browser: Client, tool: Tool) -> str:
    """A tool's edit form, as its row fetches it when opened."""
    response = browser.get(f"{tool_url(tool)}form/")
    assert response.status_code == 200
    return text(response)


def add(browser: Client, session: Session, **values: Any) -> Response:
    response: Response = browser.post(tools_url(session), fields(**values))
    return response


# -- creating --------------------------------------------------------------------------------------


def test_adding_a_tool_saves_it_and_returns_the_panel(browser: Client, session: Session) -> None:
    response = add(browser, session, strict="on", requires_approval="on")
    assert response.status_code == 200
    page = assert_tools_panel(response)
    tool = Tool.objects.get(session=session)
    assert tool.name == "weather"
    assert tool.description == "The weather in a city."
    assert tool.mode == Tool.Mode.MOCK
    assert tool.parameters == WEATHER_SCHEMA
    assert tool.strict is True
    assert tool.requires_approval is True
    assert tool.mock_output == '{"city": "{{city}}", "sky": "clear"}'
    assert "<code>weather</code>" in page
    assert "needs approval" in page
    # Its row fetches its edit form when opened, under its own prefix; a fresh "add" form.
    assert f'hx-get="{tool_url(tool)}form/"' in page
    assert f'name="t{tool.pk}-name"' not in page
    form = edit_form(browser, tool)
    assert f'name="t{tool.pk}-name"' in form
    assert f'hx-post="{tool_url(tool)}"' in form
    assert "Add a tool" in page
    assert 'name="new-name"' in page
    assert 'name="new-name" value="weather"' not in page


def test_unticked_checkboxes_are_false(browser: Client, session: Session) -> None:
    assert add(browser, session).status_code == 200
    tool = Tool.objects.get(session=session)
    assert tool.strict is False
    assert tool.requires_approval is False


def test_empty_parameters_of_a_mock_are_an_empty_object_schema(
    browser: Client, session: Session
) -> None:
    assert add(browser, session, parameters="  ").status_code == 200
    assert Tool.objects.get(session=session).parameters == {"type": "object", "properties": {}}


def test_a_builtin_with_empty_parameters_gets_the_builtins_schema_and_description(
    browser: Client, session: Session
) -> None:
    response = add(
        browser, session, name="calc", mode="builtin", builtin="calculator", parameters="",
        description="", mock_output="",
    )  # fmt: skip
    assert response.status_code == 200
    tool = Tool.objects.get(session=session)
    assert tool.mode == Tool.Mode.BUILTIN
    assert tool.builtin == "calculator"
    assert tool.parameters == BUILTINS["calculator"].parameters
    assert tool.description == BUILTINS["calculator"].description


def test_a_builtin_keeps_its_own_parameters_and_description(
    browser: Client, session: Session
) -> None:
    schema = {"type": "object", "properties": {"expression": {"type": "string"}}}
    response = add(
        browser, session, name="calc", mode="builtin", builtin="calculator",
        parameters=json.dumps(schema), description="Mine.",
    )  # fmt: skip
    assert response.status_code == 200
    tool = Tool.objects.get(session=session)
    assert tool.parameters == schema
    assert tool.description == "Mine."


def assert_refused(response: Response, *messages: str) -> str:
    assert response.status_code == 422
    page = assert_tools_panel(response)
    for message in messages:
        assert message in page, page
    # The "add" form comes back open, with what was typed.
    assert '<details class="tool new" open>' in page
    return page


def test_invalid_json_parameters_are_refused(browser: Client, session: Session) -> None:
    response = add(browser, session, parameters='{"type": "object",')
    page = assert_refused(response, "Not valid JSON")
    assert '{"type": "object",' in page
    assert not Tool.objects.exists()


def test_an_invalid_json_schema_is_refused(browser: Client, session: Session) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "nonsense"}}}
    response = add(browser, session, parameters=json.dumps(schema))
    assert_refused(response, "Not a valid JSON Schema at properties/a/type")
    assert not Tool.objects.exists()


@pytest.mark.parametrize("parameters", ['{"type": "string"}', "[]", '"object"', "3"])
def test_parameters_that_are_not_an_object_schema_are_refused(
    browser: Client, session: Session, parameters: str
) -> None:
    response = add(browser, session, parameters=parameters)
    page = assert_refused(response)
    assert "must be an object schema" in page or "must be a JSON object" in page
    assert not Tool.objects.exists()


def test_a_builtin_tool_needs_a_builtin(browser: Client, session: Session) -> None:
    response = add(browser, session, mode="builtin", builtin="")
    assert_refused(response, "Choose which built-in answers this tool.")
    assert not Tool.objects.exists()


def test_an_unknown_builtin_is_refused(browser: Client, session: Session) -> None:
    response = add(browser, session, mode="builtin", builtin="teleport")
    assert_refused(response, "Select a valid choice")
    assert not Tool.objects.exists()


def test_an_unknown_mode_is_refused(browser: Client, session: Session) -> None:
    assert_refused(add(browser, session, mode="telepathy"), "Select a valid choice")
    assert not Tool.objects.exists()


@pytest.mark.parametrize("name", ["get weather", "weather!", "météo", "", "a" * 65])
def test_a_name_the_api_would_refuse_is_refused(
    browser: Client, session: Session, name: str
) -> None:
    assert_refused(add(browser, session, name=name))
    assert not Tool.objects.exists()


def test_a_name_with_spaces_says_what_is_allowed(browser: Client, session: Session) -> None:
    assert_refused(add(browser, session, name="get weather"), "Use letters, digits, _ and - only")


def test_a_duplicate_name_in_the_session_is_refused(browser: Client, session: Session) -> None:
    assert add(browser, session).status_code == 200
    response = add(browser, session, description="Again.")
    assert_refused(response, "This session already has a tool of that name.")
    assert Tool.objects.get(session=session).description == "The weather in a city."


def test_the_same_name_in_another_session_is_fine(browser: Client, session: Session) -> None:
    other = new_session_of(browser, tools=False)
    assert add(browser, session).status_code == 200
    assert add(browser, other).status_code == 200
    assert Tool.objects.filter(name="weather").count() == 2


def test_the_panel_lists_every_tool_of_the_session_only(browser: Client, session: Session) -> None:
    other = new_session_of(browser, tools=False)
    add(browser, other, name="elsewhere")
    add(browser, session, name="b_tool")
    page = assert_tools_panel(add(browser, session, name="a-tool"))
    assert page.index("<code>a-tool</code>") < page.index("<code>b_tool</code>")
    assert "elsewhere" not in page


# -- updating and deleting -------------------------------------------------------------------------


@pytest.fixture
def tool(browser: Client, session: Session) -> Tool:
    assert add(browser, session).status_code == 200
    return Tool.objects.get(session=session)


def test_updating_a_tool_changes_it(browser: Client, tool: Tool) -> None:
    data = fields(
        f"t{tool.pk}", name="forecast", mode="manual", parameters="", requires_approval="on"
    )
    response = browser.post(tool_url(tool), data)
    assert response.status_code == 200
    page = assert_tools_panel(response)
    tool.refresh_from_db()
    assert tool.name == "forecast"
    assert tool.mode == Tool.Mode.MANUAL
    assert tool.requires_approval is True
    assert tool.parameters == {"type": "object", "properties": {}}
    assert Tool.objects.count() == 1
    assert "<code>forecast</code>" in page
    assert "<code>weather</code>" not in page


def test_an_edit_form_shows_the_schema_as_json(browser: Client, session: Session) -> None:
    assert_tools_panel(add(browser, session))
    tool = Tool.objects.get(session=session)
    page = edit_form(browser, tool)
    found = re.search(rf'<textarea name="t{tool.pk}-parameters"[^>]*>(.*?)</textarea>', page, re.S)
    assert found, page
    # Indented JSON (not a Python repr); key order is the database's (jsonb sorts keys).
    assert json.loads(found.group(1)) == WEATHER_SCHEMA
    assert '\n  "type": "object"' in found.group(1)


def test_updating_reads_only_the_tools_own_prefix(browser: Client, tool: Tool) -> None:
    response = browser.post(tool_url(tool), fields("new", name="renamed"))
    assert response.status_code == 422  # no t<pk>- fields: name and mode are missing
    tool.refresh_from_db()
    assert tool.name == "weather"


def test_an_update_keeping_its_name_is_not_a_duplicate(browser: Client, tool: Tool) -> None:
    response = browser.post(tool_url(tool), fields(f"t{tool.pk}", description="Changed."))
    assert response.status_code == 200
    tool.refresh_from_db()
    assert tool.description == "Changed."


def test_an_update_to_another_tools_name_is_refused(
    browser: Client, session: Session, tool: Tool
) -> None:
    assert add(browser, session, name="other").status_code == 200
    response = browser.post(tool_url(tool), fields(f"t{tool.pk}", name="other"))
    assert response.status_code == 422
    assert "This session already has a tool of that name." in text(response)
    tool.refresh_from_db()
    assert tool.name == "weather"


def test_an_invalid_update_changes_nothing(browser: Client, tool: Tool) -> None:
    response = browser.post(tool_url(tool), fields(f"t{tool.pk}", parameters="{oops"))
    assert response.status_code == 422
    page = assert_tools_panel(response)
    assert "Not valid JSON" in page
    assert "{oops" in page
    tool.refresh_from_db()
    assert tool.parameters == WEATHER_SCHEMA


def test_a_rejected_rename_keeps_the_saved_name_in_the_summary(browser: Client, tool: Tool) -> None:
    response = browser.post(tool_url(tool), fields(f"t{tool.pk}", name="bad name"))
    assert response.status_code == 422
    page = assert_tools_panel(response)
    assert f"<summary><code>{tool.name}</code>" in page
    assert "<summary><code>bad name</code>" not in page


def test_deleting_a_tool_removes_it(browser: Client, session: Session, tool: Tool) -> None:
    response = browser.post(f"{tool_url(tool)}delete/")
    assert response.status_code == 200
    page = assert_tools_panel(response)
    assert not Tool.objects.exists()
    assert "<code>weather</code>" not in page
    assert "No tools" in page
    assert browser.post(f"{tool_url(tool)}delete/").status_code == 404


def test_a_tool_of_another_session_is_not_found(
    browser: Client, session: Session, tool: Tool
) -> None:
    other = new_session_of(browser, tools=False)  # the same browser's, not the tool's session
    wrong = f"/sessions/{other.pk}/tools/{tool.pk}/"
    assert browser.post(wrong, fields(f"t{tool.pk}", name="moved")).status_code == 404
    assert browser.post(f"{wrong}delete/").status_code == 404
    tool.refresh_from_db()
    assert (tool.session_id, tool.name) == (session.pk, "weather")


# -- who may ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stranger_has_sessions", [False, True])
def test_another_browser_cannot_touch_the_tools(
    session: Session, tool: Tool, stranger_has_sessions: bool
) -> None:
    stranger = Client()
    if stranger_has_sessions:
        new_session_of(stranger, tools=False)
    assert stranger.post(tools_url(session), fields(name="intruder")).status_code == 404
    update = fields(f"t{tool.pk}", name="hijacked", mock_output="pwned")
    assert stranger.post(tool_url(tool), update).status_code == 404
    assert stranger.post(f"{tool_url(tool)}delete/").status_code == 404
    assert list(Tool.objects.values_list("name", "mock_output")) == [
        ("weather", '{"city": "{{city}}", "sky": "clear"}')
    ]


def test_another_users_session_tools_are_not_found(django_user_model: Any) -> None:
    owner = django_user_model.objects.create_user(username="ada", password="pw-ada-123")
    session = Session.objects.create(owner=owner, model="sim")
    tool = Tool.objects.create(session=session, name="secret", parameters={})
    stranger = django_user_model.objects.create_user(username="bob", password="pw-bob-123")
    browser = Client()
    browser.force_login(stranger)
    assert browser.post(tools_url(session), fields()).status_code == 404
    assert browser.post(tool_url(tool), fields(f"t{tool.pk}")).status_code == 404
    assert browser.post(f"{tool_url(tool)}delete/").status_code == 404
    assert list(Tool.objects.values_list("name", flat=True)) == ["secret"]
    # The owner may.
    browser.force_login(owner)
    assert browser.post(tools_url(session), fields()).status_code == 200
    assert Tool.objects.filter(session=session).count() == 2


def test_the_tool_views_only_accept_post(browser: Client, session: Session, tool: Tool) -> None:
    for url in (tools_url(session), tool_url(tool), f"{tool_url(tool)}delete/"):
        assert browser.get(url).status_code == 405, url
    assert Tool.objects.count() == 1


# -- the session page ------------------------------------------------------------------------------


def test_the_session_page_shows_the_tools_panel(browser: Client, session: Session) -> None:
    page = text(browser.get(f"/sessions/{session.pk}/"))
    assert '<section id="tools" class="tools">' in page
    assert "No tools" in page
    assert "Add a tool" in page
    assert f'hx-post="{tools_url(session)}"' in page

    add(browser, session, name="weather", requires_approval="on")
    add(browser, session, name="calc", mode="builtin", builtin="calculator", parameters="")
    page = text(browser.get(f"/sessions/{session.pk}/"))
    panel = page[page.index('<section id="tools"') :]
    panel = panel[: panel.index("</section>")]
    assert "No tools" not in panel
    for tool in Tool.objects.filter(session=session):
        assert f"<code>{tool.name}</code>" in panel
        assert f'hx-get="{tool_url(tool)}form/"' in panel
        form = edit_form(browser, tool)
        assert f'name="t{tool.pk}-name"' in form
        assert f'hx-post="{tool_url(tool)}delete/"' in form
    weather = '<code>weather</code> <span class="mode" title="Mock (a canned output)">mock</span>'
    assert weather + ' <span class="mode approval">needs approval</span></summary>' in panel
    calc = '<code>calc</code> <span class="mode" title="Built-in (runs on the server)">built-in'
    assert calc + "</span></summary>" in panel
    assert "Add a tool" in panel
    assert len(re.findall(r'name="new-name"', panel)) == 1


def test_a_tools_edit_form_is_its_owners_only(browser: Client, session: Session) -> None:
    add(browser, session)
    tool = Tool.objects.get(session=session)
    assert browser.get(f"{tool_url(tool)}form/").status_code == 200
    assert Client().get(f"{tool_url(tool)}form/").status_code == 404
    assert browser.post(f"{tool_url(tool)}form/").status_code == 405
