"""The simulated model: deterministic, plausible, and tool calls that satisfy their schemas."""

from __future__ import annotations

import asyncio
import json
import re
import zoneinfo
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlparse

import jsonschema
import pytest
from openai import AsyncOpenAI, OpenAI
from openai.types.responses import Response

from agents.models import Session
from agents.tools.starter import starter_tools
from simulator.context import count_tokens, normalize_input
from simulator.model import CallOut, ModelInput, Output, TextOut, respond
from tests.simserver import SimServer

Item = dict[str, Any]
TERMINAL = {"response.completed", "response.incomplete", "response.failed", "error"}
STRICT = {
    "type": "object",
    "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
    "required": ["query", "limit"],
    "additionalProperties": False,
}
SCHEMAS: dict[str, dict[str, Any]] = {
    "strict": STRICT,
    "enums": {
        "type": "object",
        "properties": {
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit", "kelvin"]},
            "level": {"enum": [1, 2, 3]},
        },
        "required": ["unit", "level"],
    },
    "bounded integers": {
        "type": "object",
        "properties": {
            "count": {"type": "integer", "minimum": 3, "maximum": 7},
            "year": {"type": "integer", "minimum": 1990, "maximum": 2030},
            "offset": {"type": "integer", "minimum": -10, "maximum": -2},
            "ratio": {"type": "number", "minimum": 0.5, "maximum": 0.75},
        },
        "required": ["count", "year", "offset", "ratio"],
    },
    "arrays": {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 4},
            "ids": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 5},
        },
        "required": ["tags", "ids"],
    },
    "nested objects": {
        "type": "object",
        "properties": {
            "filter": {
                "type": "object",
                "properties": {
                    "range": {
                        "type": "object",
                        "properties": {"start": {"type": "string", "format": "date"}},
                        "required": ["start"],
                        "additionalProperties": False,
                    },
                    "flags": {"type": "object", "properties": {"exact": {"type": "boolean"}}},
                },
                "required": ["range", "flags"],
                "additionalProperties": False,
            }
        },
        "required": ["filter"],
        "additionalProperties": False,
    },
    "nullable": {
        "type": "object",
        "properties": {
            "note": {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "null"}]},
            "page": {"type": ["integer", "null"], "minimum": 2, "maximum": 3},
        },
        "required": ["note", "page"],
        "additionalProperties": False,
    },
    "refs to $defs": {
        "$defs": {"Place": {**STRICT, "properties": {"city": {"type": "string"}}, "required": []}},
        "type": "object",
        "properties": {
            "home": {"$ref": "#/$defs/Place"},
            "away": {"anyOf": [{"$ref": "#/$defs/Place"}, {"type": "null"}]},
        },
        "required": ["home", "away"],
        "additionalProperties": False,
    },
    "bounds below the defaults": {
        "type": "object",
        "properties": {
            "top": {"type": "integer", "maximum": 0},
            "low": {"type": "number", "maximum": -5},
            "gap": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 3},
            "share": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.01},
        },
        "required": ["top", "low", "gap", "share"],
    },
    "date format": {
        "type": "object",
        "properties": {"day": {"type": "string", "format": "date"}},
        "required": ["day"],
    },
}


def tool(name: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "function", "name": name, "parameters": parameters or STRICT, "strict": True}


def ask(text: str, tools: Sequence[Item] = (), seed: int = 7, **options: Any) -> ModelInput:
    return model_input(normalize_input(text), tools, seed, **options)


def model_input(
    items: list[Item], tools: Sequence[Item], seed: int = 7, **options: Any
) -> ModelInput:
    fields = {"tool_choice": "auto", "parallel_tool_calls": True, "metadata": {}, **options}
    return ModelInput(items=items, tools=list(tools), seed=seed, **fields)


def as_item(output: Output) -> Item:
    if isinstance(output, CallOut):
        return {"type": "function_call", **vars(output)}
    return {"type": "message", "role": "assistant", "content": output.text}


def run(
    text: str,
    tools: list[dict[str, Any]],
    result: Callable[[CallOut, int], str] = lambda call, n: f"result {n} for {call.name}",
    **options: Any,
) -> list[list[Output]]:
    """Every response of a tool loop, the client answering each call with ``result``."""
    items, responses = normalize_input(text), []
    for _ in range(60):
        outputs = respond(model_input(items, tools, **options))
        responses.append(outputs)
        items += [as_item(o) for o in outputs]
        calls = [o for o in outputs if isinstance(o, CallOut)]
        if not calls:
            return responses
        for call in calls:
            output = result(call, len(items))
            items.append(
                {"type": "function_call_output", "call_id": call.call_id, "output": output}
            )
    raise AssertionError("the model never gave a final answer")


def only_text(outputs: list[Output]) -> str:
    assert len(outputs) == 1
    assert isinstance(outputs[0], TextOut)
    return outputs[0].text


def only_call(outputs: list[Output]) -> CallOut:
    assert len(outputs) == 1
    assert isinstance(outputs[0], CallOut)
    return outputs[0]


def test_the_same_seed_and_input_give_identical_output() -> None:
    tools = [tool("search_docs"), tool("get_time")]
    for text in ("Tell me about glaciers", "/parallel 3 glaciers", "/research 4 glaciers"):
        assert respond(ask(text, tools)) == respond(ask(text, tools))
    assert run("/research 5 glaciers", tools) == run("/research 5 glaciers", tools)


def test_a_different_seed_gives_different_text_for_the_same_chat() -> None:
    texts = {only_text(respond(ask("Tell me about glaciers", seed=seed))) for seed in (7, 8, 9)}
    assert len(texts) == 3


def test_a_plain_message_gets_several_sentences_about_its_topic() -> None:
    text = only_text(respond(ask("How do sourdough starters work?")))
    assert len(re.findall(r"[.!?](\s|$)", text)) >= 3
    assert "sourdough starters" in text
    assert text != "How do sourdough starters work?"
    assert count_tokens(text) > 2 * count_tokens("How do sourdough starters work?")


@pytest.mark.parametrize("tokens", [300, 1000])
def test_the_chat_directive_gives_about_the_asked_number_of_tokens(tokens: int) -> None:
    text = only_text(respond(ask(f"/chat {tokens}")))
    assert abs(count_tokens(text) - tokens) <= 0.15 * tokens


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_call_arguments_satisfy_the_tool_schema(name: str) -> None:
    schema = SCHEMAS[name]
    checker = jsonschema.FormatChecker()
    for seed in range(5):
        for response in run("/research 4 tide tables", [tool("check_tides", schema)], seed=seed):
            for output in response:
                if isinstance(output, CallOut):
                    arguments = json.loads(output.arguments)
                    jsonschema.validate(arguments, schema, format_checker=checker)


def test_property_names_get_fitting_values() -> None:
    properties = {name: {"type": "string"} for name in ("expression", "timezone", "url")}
    schema = {**STRICT, "properties": properties, "required": list(properties)}
    call = only_call(respond(ask("look up the numbers", [tool("evaluate", schema)])))
    arguments = json.loads(call.arguments)
    assert re.fullmatch(r"[\d\s()+\-*/]+", arguments["expression"])
    assert zoneinfo.ZoneInfo(arguments["timezone"])
    url = urlparse(arguments["url"])
    assert url.scheme == "https"
    assert url.netloc


def test_a_request_to_look_something_up_calls_a_tool() -> None:
    call = only_call(respond(ask("Please look up the opening hours", [tool("search_docs")])))
    assert call.name == "search_docs"
    assert call.call_id.startswith("call_")


def test_mentioning_a_tool_by_name_makes_a_call() -> None:
    tools = [tool("get_weather"), tool("tide_tables")]
    only_text(respond(ask("what do the charts say for Brest", tools)))
    call = only_call(respond(ask("what do the tide tables say for Brest", tools)))
    assert call.name in {"get_weather", "tide_tables"}


def test_after_the_outputs_arrive_the_answer_cites_them() -> None:
    responses = run("/lookup Lisbon weather", [tool("get_weather")], lambda c, n: "Lisbon 21C")
    assert len(responses) == 2
    assert "Lisbon 21C" in only_text(responses[-1])


def test_parallel_gives_all_calls_in_one_response_then_an_answer() -> None:
    tools = [tool("search_docs"), tool("get_time")]
    responses = run("/parallel 4 train times", tools, lambda call, n: f"finding-{n}")
    assert len(responses) == 2
    calls = responses[0]
    assert len(calls) == 4
    assert all(isinstance(c, CallOut) for c in calls)
    assert len({c.call_id for c in calls if isinstance(c, CallOut)}) == 4
    answer = only_text(responses[1])
    assert len(re.findall(r"finding-\d+", answer)) == 4


def test_parallel_without_parallel_tool_calls_makes_one_call_per_response() -> None:
    responses = run("/parallel 4 train times", [tool("search_docs")], parallel_tool_calls=False)
    assert [len(r) for r in responses] == [1, 1, 1, 1, 1]
    assert all(isinstance(r[0], CallOut) for r in responses[:4])
    only_text(responses[-1])


@pytest.mark.parametrize(("steps", "expected"), [(1, 1), (5, 5), (50, 50), (80, 50)])
def test_research_makes_n_sequential_calls_then_a_report(steps: int, expected: int) -> None:
    responses = run(f"/research {steps} tide tables", [tool("search_docs")])
    assert len(responses) == expected + 1
    assert all(isinstance(only_call(r), CallOut) for r in responses[:-1])
    assert f"with {expected} tool call" in only_text(responses[-1])


def test_the_scenario_can_come_from_metadata() -> None:
    metadata = {"sim_scenario": "research 3"}
    responses = run("tide tables", [tool("search_docs")], metadata=metadata)
    assert [len(r) for r in responses] == [1, 1, 1, 1]
    assert "tide tables" in only_text(responses[-1])


def test_hello_with_tools_is_answered_in_prose() -> None:
    only_text(respond(ask("hello", [tool("search_docs")])))


def test_tool_choice_none_gets_text_even_for_a_tool_scenario() -> None:
    text = only_text(respond(ask("/lookup x", [tool("search_docs")], tool_choice="none")))
    assert "tool use is off" in text


def test_tool_choice_required_calls_a_tool_even_for_hello() -> None:
    only_call(respond(ask("hello", [tool("search_docs")], tool_choice="required")))


def test_a_named_tool_choice_calls_that_tool() -> None:
    tools = [tool("search_docs"), tool("get_time"), tool("get_weather")]
    choice = {"type": "function", "name": "get_time"}
    assert only_call(respond(ask("hello", tools, tool_choice=choice))).name == "get_time"
    assert only_call(respond(ask("/lookup x", tools, tool_choice=choice))).name == "get_time"


def test_a_tool_scenario_without_tools_explains_itself_in_text() -> None:
    text = only_text(respond(ask("/research 5 tide tables")))
    assert "no tools" in text
    assert "tide tables" in text


def sdk_turn(server: SimServer, text: Any, **fields: Any) -> dict[str, Any]:
    with OpenAI(api_key=server.api_key, base_url=server.base_url, max_retries=0) as client:
        response: Response = client.responses.create(model="sim", input=text, timeout=10, **fields)
        return response.model_dump(mode="json")


def test_servers_with_the_same_seed_answer_alike_over_the_sdk(
    sim_server: SimServer, start_sim: Callable[..., SimServer]
) -> None:
    tools = [tool("search_docs"), tool("get_time")]
    twin, other = start_sim("--seed", "7"), start_sim("--seed", "8")

    def outputs(server: SimServer, text: str) -> list[dict[str, Any]]:
        body = sdk_turn(server, text, tools=tools, store=False)
        return [{k: v for k, v in i.items() if k != "id"} for i in body["output"]]

    for text in ("/parallel 3 glaciers", "Tell me about glaciers"):
        assert outputs(sim_server, text) == outputs(twin, text)
    assert outputs(sim_server, "Tell me about glaciers") != outputs(other, "Tell me about glaciers")


def test_a_lookup_over_the_sdk_cites_the_tool_output(sim_server: SimServer) -> None:
    first = sdk_turn(sim_server, "/lookup Lisbon weather", tools=[tool("get_weather")])
    call = first["output"][0]
    assert call["type"] == "function_call"
    jsonschema.validate(json.loads(call["arguments"]), STRICT)
    answer = {"type": "function_call_output", "call_id": call["call_id"], "output": "Lisbon 21C"}
    second = sdk_turn(
        sim_server, [answer], tools=[tool("get_weather")], previous_response_id=first["id"]
    )
    assert "Lisbon 21C" in second["output"][0]["content"][0]["text"]


def test_max_output_tokens_truncates_a_long_chat_over_http(sim_server: SimServer) -> None:
    body = sdk_turn(sim_server, "/chat 400 tides", max_output_tokens=16, store=False)
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["usage"]["output_tokens"] == 16


async def test_max_output_tokens_ends_a_websocket_response_as_incomplete(
    sim_server: SimServer,
) -> None:
    client = AsyncOpenAI(api_key=sim_server.api_key, base_url=sim_server.base_url, max_retries=0)
    async with client, client.responses.connect() as conn:
        await conn.response.create(
            model="sim", input="/chat 400 tides", max_output_tokens=16, store=False
        )
        events = [json.loads(await asyncio.wait_for(conn.recv_bytes(), 10))]
        while events[-1]["type"] not in TERMINAL:
            events.append(json.loads(await asyncio.wait_for(conn.recv_bytes(), 10)))
    last = events[-1]
    deltas = sum(e["type"] == "response.output_text.delta" for e in events)
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"]["reason"] == "max_output_tokens"
    assert last["response"]["usage"]["output_tokens"] == 16 == deltas


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("calculate 17*23+4", "calculator"),  # it called ask_human, the first tool
        ("what time is it in Osaka?", "current_time"),
        ("remember this note: tides at six", "notes"),
        ("use ask_human to check", "ask_human"),
    ],
)
def test_a_tool_named_by_a_word_of_its_name_is_the_one_called(text: str, wanted: str) -> None:
    tools = [tool(name) for name in ("ask_human", "calculator", "current_time", "notes")]
    assert only_call(respond(ask(text, tools))).name == wanted


def starter_definitions() -> list[dict[str, Any]]:
    """What a session made by "New session" sends: its built-in tools (agents/tools/starter.py)."""
    return [found.definition() for found in starter_tools(Session(model="sim"))]


@pytest.mark.parametrize(
    ("text", "calls"),
    [
        ("/research 3 tides", [["calculator"], ["current_time"], ["notes"]]),
        ("/parallel", [["calculator", "current_time", "notes"]]),
        ("/lookup x", [["calculator"]]),
        ("calculate 17*23+4", [["calculator"]]),
    ],
)
def test_the_home_pages_scenarios_call_the_built_in_tools_of_a_new_session(
    text: str, calls: list[list[str]]
) -> None:
    responses = run(text, starter_definitions())
    made = [[o.name for o in outputs if isinstance(o, CallOut)] for outputs in responses]
    assert made == [*calls, []]  # the calls, then the answer
    only_text(responses[-1])


@pytest.mark.parametrize(
    ("text", "expression"),
    [
        ("calculate 17*23+4", "17*23+4"),
        ("please compute (2 + 3) ** 2 for me", "(2 + 3) ** 2"),
        ("calculate 7 // 2 and nothing else", "7 // 2"),
    ],
)
def test_the_calculator_gets_the_arithmetic_the_user_wrote(text: str, expression: str) -> None:
    call = only_call(respond(ask(text, starter_definitions())))
    assert (call.name, json.loads(call.arguments)) == ("calculator", {"expression": expression})


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        ("What time is it in Tokyo?", "Asia/Tokyo"),
        ("what time is it in new york", "America/New_York"),
        ("what time is it in Port of Spain?", "America/Port_of_Spain"),
    ],
)
def test_the_clock_gets_the_zone_of_the_city_the_user_named(text: str, zone: str) -> None:
    call = only_call(respond(ask(text, starter_definitions())))
    assert (call.name, json.loads(call.arguments)) == ("current_time", {"timezone": zone})


def test_arithmetic_goes_only_where_any_string_may() -> None:
    pattern = {"type": "string", "pattern": "^[a-z]+$"}
    schema = {**STRICT, "properties": {"expression": pattern}, "required": ["expression"]}
    call = only_call(respond(ask("calculate 17*23+4", [tool("calculator", schema)])))
    assert json.loads(call.arguments)["expression"] != "17*23+4"  # the pattern forbids it
