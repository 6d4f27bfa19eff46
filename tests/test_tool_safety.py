"""No tool schema, argument or tool failure can freeze the process or break a session for good.

Each test reproduces a finding of issue 11 (items 1, 4 and the tool-schema part of 5).
"""

from __future__ import annotations

import asyncio
import html
import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from agents.models import Item, Session, Tool
from agents.tools.executor import answer
from simulator.schema import arguments
from tests.simserver import SimServer
from tests.tabs import Tab, new_browser, new_session
from tests.test_agent_loop import assert_each_call_answered_once, assert_oracle_matches, items_of
from tests.test_pages import new_session_of

UseUpstream = Callable[[SimServer], SimServer]
REDOS_SCHEMA = {
    "type": "object",
    "properties": {"q": {"type": "string", "pattern": "^(a+)+$"}},
    "required": ["q"],
}
# Python's backtracking `re` needs ~4 s for 27 a's and twice that for each more: forever.
EVIL = "a" * 80 + "b"


async def never_asked(kind: str) -> str:
    raise AssertionError(f"nobody should be asked ({kind})")


def mock(parameters: dict[str, Any], output: str = "found {{q}}") -> Tool:
    return Tool(name="lookup", mode=Tool.Mode.MOCK, parameters=parameters, mock_output=output)


# -- 1. ReDoS: patterns are matched in linear time, off the event loop ---------------------------


@pytest.mark.timeout(30)  # the old code blocks the event loop for ever: this is its failure
async def test_a_catastrophic_pattern_does_not_block_the_event_loop() -> None:
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    beating = asyncio.create_task(heartbeat())
    tool = mock(REDOS_SCHEMA)
    evil, fine = await asyncio.gather(
        answer(tool, json.dumps({"q": EVIL}), "s", never_asked),
        answer(tool, json.dumps({"q": "aaaa"}), "s", never_asked),
    )
    beating.cancel()
    assert evil == (
        "Error: The arguments do not match the tool's schema at q: "
        f"'{EVIL}' does not match '^(a+)+$'"
    )
    assert fine == "found aaaa"
    assert ticks > 0


@pytest.mark.timeout(30)
async def test_catastrophic_pattern_properties_do_not_block_the_event_loop() -> None:
    schema = {
        "type": "object",
        "patternProperties": {"^(a+)+$": {"type": "integer"}},
        "additionalProperties": False,
    }
    output = await answer(mock(schema, "ok"), json.dumps({EVIL: 1}), "s", never_asked)
    assert output.startswith("Error: The arguments do not match the tool's schema")
    assert EVIL in output
    assert await answer(mock(schema, "ok"), '{"aaa": 1}', "s", never_asked) == "ok"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("runners")
@pytest.mark.timeout(60)
async def test_a_redos_lookup_leaves_the_server_answering_others(
    sim_server: SimServer, use_upstream: UseUpstream
) -> None:
    """The finding as reported: `/lookup aaaa…b` against `^(a+)+$` froze every session."""
    use_upstream(sim_server)
    browser = await new_browser()
    session = await new_session(browser)
    other = await new_session(browser)
    await Tool.objects.acreate(
        session=session, name="lookup", parameters=REDOS_SCHEMA, mode=Tool.Mode.MOCK
    )
    tab = await Tab(str(session.pk), browser).open()
    bystander = await Tab(str(other.pk), browser).open()
    evil = asyncio.create_task(tab.turn(f"/lookup {EVIL}"))
    assert "completed" in await bystander.turn("/chat 10 are you there")
    await evil
    items = await items_of(session)
    (output,) = [i.data["output"] for i in items if i.kind == "function_call_output"]
    assert output.startswith("Error: The arguments do not match the tool's schema at q")
    assert (items[-1].kind, items[-1].status) == ("message", "completed")
    await tab.turn("/chat 10 thanks anyway")  # the session keeps working
    assert (await items_of(session))[-1].status == "completed"
    await tab.close()
    await bystander.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "dialect",
    ["http://json-schema.org/draft-07/schema#", "https://json-schema.org/draft/2020-12/schema"],
)
async def test_a_schema_naming_its_dialect_is_still_matched_in_linear_time(dialect: str) -> None:
    """jsonschema switches to a dialect's stock validator wherever a subschema names one."""
    q = {"$schema": dialect, "type": "string", "pattern": "^(a+)+$"}
    schema = {"$schema": dialect, "type": "object", "properties": {"q": q, "again": {"$ref": "#"}}}
    output = await answer(mock(schema), json.dumps({"again": {"q": EVIL}}), "s", never_asked)
    assert output.startswith("Error: The arguments do not match the tool's schema at again/q")
    assert await answer(mock(schema), '{"q": "aa"}', "s", never_asked) == "found aa"


async def test_arguments_nested_too_deep_are_an_error_for_the_model() -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": "#"}}}
    deep = '{"a":' * 5000 + "{}" + "}" * 5000
    output = await answer(mock(schema, "ok"), deep, "s", never_asked)
    assert output.startswith("Error: The arguments are nested too deeply"), output[:200]


async def test_a_self_referencing_schema_is_an_error_for_the_model() -> None:
    schema = {"type": "object", "$ref": "#/$defs/loop", "$defs": {"loop": {"$ref": "#/$defs/loop"}}}
    output = await answer(mock(schema, "ok"), "{}", "s", never_asked)
    assert output.startswith("Error: "), output


@pytest.mark.timeout(30)
async def test_an_exponential_schema_is_cut_off_by_the_validation_deadline(settings: Any) -> None:
    """anyOf over $ref doubles the work per level: 2**40 checks without a deadline."""
    settings.TOOL_VALIDATION_TIMEOUT_SECONDS = 0.5
    defs: dict[str, Any] = {
        f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 2} for i in range(40)
    }
    defs["d40"] = {"type": "integer"}
    schema = {"type": "object", "properties": {"x": {"$ref": "#/$defs/d0"}}, "$defs": defs}
    output = await answer(mock(schema, "ok"), '{"x": "not a number"}', "s", never_asked)
    assert output.startswith("Error: Checking the arguments against the tool's schema took")


# -- 1 and 5. The tool form refuses what cannot be checked safely --------------------------------


def add_tool(parameters: str) -> tuple[int, str, Session]:
    browser = Client()
    session = new_session_of(browser, tools=False)
    data = {
        "new-name": "lookup",
        "new-description": "Look something up.",
        "new-mode": "mock",
        "new-builtin": "",
        "new-parameters": parameters,
        "new-mock_output": "found",
    }
    response = browser.post(f"/sessions/{session.pk}/tools/", data)
    return response.status_code, html.unescape(response.content.decode()), session


def with_q(**keywords: Any) -> str:
    q = {"type": "string", **keywords}
    return json.dumps({"type": "object", "properties": {"q": q}})


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (with_q(pattern=r"(a)\1"), r"The pattern '(a)\\1' at properties/q/pattern"),
        (with_q(pattern="^(?=a)a$"), "The pattern '^(?=a)a$' at properties/q/pattern"),
        (
            json.dumps({"type": "object", "patternProperties": {"(?<!x)y": {}}}),
            "The pattern '(?<!x)y' at patternProperties",
        ),
    ],
)
def test_a_pattern_without_a_linear_time_match_is_refused(parameters: str, message: str) -> None:
    status, page, session = add_tool(parameters)
    assert status == 422
    assert message in page, page
    assert "backreferences or lookaround" in page
    assert not Tool.objects.filter(session=session).exists()


@pytest.mark.django_db
def test_unevaluated_properties_with_pattern_properties_are_refused() -> None:
    schema = {"type": "object", "patternProperties": {"^a": {}}, "unevaluatedProperties": False}
    status, page, session = add_tool(json.dumps(schema))
    assert status == 422
    assert "unevaluatedProperties" in page
    assert not Tool.objects.filter(session=session).exists()


@pytest.mark.django_db
def test_a_linear_pattern_is_accepted() -> None:
    status, _, session = add_tool(with_q(pattern="^[0-9]{6}$"))
    assert status == 200
    assert Tool.objects.filter(session=session).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("keyword", ["minLength", "minItems", "minProperties"])
def test_an_absurd_minimum_size_is_refused(keyword: str) -> None:
    status, page, session = add_tool(with_q(**{keyword: 10_000_000}))
    assert status == 422
    assert f"{keyword} of 10000000 at properties/q/{keyword}" in page, page
    assert "at most 10000" in page
    assert not Tool.objects.filter(session=session).exists()


def nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


@pytest.mark.django_db
@pytest.mark.parametrize("levels", [100, 400])
def test_a_schema_nested_too_deep_is_refused_with_a_clear_message(levels: int) -> None:
    status, page, session = add_tool(json.dumps(nested(levels)))
    assert status == 422
    assert "nested too deeply" in page
    assert "at most 32 levels" in page
    assert not Tool.objects.filter(session=session).exists()


@pytest.mark.django_db
def test_json_nested_deeper_than_the_parser_goes_is_refused_with_a_clear_message() -> None:
    status, page, session = add_tool('{"enum": ' + "[" * 5_000 + "]" * 5_000 + "}")
    assert status == 422
    assert "nested too deeply" in page
    assert not Tool.objects.filter(session=session).exists()


@pytest.mark.django_db
def test_a_schema_within_the_depth_limit_is_accepted() -> None:
    status, _, session = add_tool(json.dumps(nested(15)))  # 31 levels of JSON
    assert status == 200
    assert Tool.objects.filter(session=session).exists()


# -- 1. The simulator's arguments stay small whatever the schema asks -----------------------------


def size(value: Any) -> int:
    return len(json.dumps(value))


def test_the_simulator_bounds_strings_arrays_and_nesting() -> None:
    rng = random.Random(1)
    huge = {"type": "object", "properties": {"q": {"type": "string", "minLength": 10_000_000}}}
    assert size(arguments(huge, rng, "topic", 1)) < 20_000
    cube: dict[str, Any] = {"type": "string"}
    for _ in range(3):
        cube = {"type": "array", "items": cube, "minItems": 100}
    wide = {"type": "object", "properties": {"rows": cube}}
    assert size(arguments(wide, rng, "topic", 1)) < 200_000
    deep = nested(300)
    assert size(arguments(deep, rng, "topic", 1)) < 1_000


@pytest.mark.parametrize("bound", [float("inf"), 10**400])
def test_the_simulator_writes_a_number_for_bounds_past_any_float(bound: Any) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": bound}}}
    assert isinstance(arguments(schema, random.Random(1), "topic", 1)["n"], int)


def test_the_simulator_bounds_a_ref_bomb() -> None:
    """Every level refers to the next six times: 6**8 copies when inlined naively."""
    properties = {f"p{i}": {"$ref": "#/$defs/node"} for i in range(6)}
    node = {"type": "object", "properties": properties}
    schema = {"type": "object", "$defs": {"node": node}, "properties": properties}
    assert size(arguments(schema, random.Random(1), "topic", 1)) < 200_000


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("runners")
async def test_a_huge_min_length_does_not_flood_the_browser(
    sim_server: SimServer, use_upstream: UseUpstream
) -> None:
    """A tool saved before the limit (or imported) asks for 2,000,000 characters."""
    use_upstream(sim_server)
    browser = await new_browser()
    session = await new_session(browser)
    schema = {"type": "object", "properties": {"q": {"type": "string", "minLength": 2_000_000}}}
    await Tool.objects.acreate(
        session=session, name="lookup", parameters=schema, mode=Tool.Mode.MOCK, mock_output="ok"
    )
    tab = await Tab(str(session.pk), browser).open()
    frames = await tab.turn("/lookup the harbour", wait=60)
    await tab.close()
    assert len(frames) < 200_000
    assert (await items_of(session))[-1].status == "completed"


# -- 4. A tool that raises never leaves the session unusable --------------------------------------

BAD_URLS = ["http://[::1", "http://example.com\uff20127.0.0.1/"]


@pytest.mark.parametrize("url", BAD_URLS)
async def test_http_get_with_a_malformed_url_is_an_error_for_the_model(
    url: str, settings: Any
) -> None:
    settings.TOOL_HTTP_ALLOWED_HOSTS = ["::1", "127.0.0.1", "example.com"]
    tool = Tool(name="fetch", mode=Tool.Mode.BUILTIN, builtin="http_get")
    output = await answer(tool, json.dumps({"url": url}), "s", never_asked)
    assert output.startswith("Error: The url is not a valid URL"), output


async def test_any_exception_from_a_tool_becomes_an_error_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agents.tools import builtins

    async def broken(session_id: str, arguments: dict[str, Any]) -> str:
        raise KeyError("surprise")

    monkeypatch.setitem(
        builtins.BUILTINS,
        "calculator",
        builtins.Builtin("calculator", "", {"type": "object"}, broken),
    )
    tool = Tool(name="calc", mode=Tool.Mode.BUILTIN, builtin="calculator")
    output = await answer(tool, "{}", "s", never_asked)
    assert output == "Error: the tool failed unexpectedly (KeyError); try something else."


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("runners")
@pytest.mark.parametrize("url", BAD_URLS)
async def test_a_tool_that_raises_answers_its_call_and_the_next_turn_works(
    url: str, sim_server: SimServer, use_upstream: UseUpstream, settings: Any
) -> None:
    server = use_upstream(sim_server)
    settings.TOOL_HTTP_ALLOWED_HOSTS = ["::1", "127.0.0.1", "example.com"]
    browser = await new_browser()
    session = await new_session(browser)
    # The simulator calls with the schema's only allowed value: the model sends the bad URL.
    parameters = {"type": "object", "properties": {"url": {"type": "string", "enum": [url]}}}
    await Tool.objects.acreate(
        session=session,
        name="fetch",
        description="Fetch a page.",
        mode=Tool.Mode.BUILTIN,
        builtin="http_get",
        parameters=parameters,
    )
    tab = await Tab(str(session.pk), browser).open()
    first = await tab.turn("/lookup fetch the status page")
    second = await tab.turn("/chat 10 and now?")
    await tab.close()
    assert "failed unexpectedly" not in first + second
    assert "No tool output found" not in second
    items = await items_of(session)
    assert_each_call_answered_once(items)
    (output,) = [i.data["output"] for i in items if i.kind == "function_call_output"]
    assert output.startswith("Error: The url is not a valid URL")
    assert [(i.kind, i.role, i.status) for i in items[-2:]] == [
        ("message", "user", "completed"),
        ("message", "assistant", "completed"),
    ]
    await assert_oracle_matches(server, session)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("runners")
async def test_a_call_left_without_output_is_answered_when_the_next_turn_starts(
    sim_server: SimServer, use_upstream: UseUpstream
) -> None:
    """A run that died between a call and its output (as the old code left them) is repaired."""
    server = use_upstream(sim_server)
    browser = await new_browser()
    session = await new_session(browser)
    user = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    call = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_dangling",
        "name": "fetch",
        "arguments": "{}",
    }
    await Item.objects.acreate(session=session, position=0, data=user)
    await Item.objects.acreate(session=session, position=1, parent=0, data=call)
    tab = await Tab(str(session.pk), browser).open()
    frames = await tab.turn("/chat 10 still there?")
    await tab.close()
    assert "No tool output found" not in frames
    assert "the run ended before this tool answered" in html.unescape(frames)
    items = await items_of(session)
    assert [(i.kind, i.status) for i in items] == [
        ("message", "completed"),
        ("function_call", "completed"),
        ("function_call_output", "completed"),
        ("message", "completed"),
        ("message", "completed"),
    ]
    assert items[2].data == {
        "type": "function_call_output",
        "call_id": "call_dangling",
        "output": "Error: the run ended before this tool answered.",
    }
    await assert_oracle_matches(server, session)
