"""HTTP ``POST /v1/responses`` through the official ``openai`` SDK against the standalone server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import openai
import pytest
from openai import OpenAI
from openai.types.responses import FunctionToolParam

from tests.simserver import SimServer

MODEL = "sim-model"
TIMEOUT = 10.0
DONE = {"response.completed", "response.incomplete", "response.failed", "error"}


def tool(name: str, **properties: Any) -> FunctionToolParam:
    schema = {"type": "object", "properties": properties, "required": list(properties)}
    return FunctionToolParam(
        type="function",
        name=name,
        description=f"The {name} tool.",
        parameters={**schema, "additionalProperties": False},
        strict=True,
    )


TOOLS = [
    tool("get_weather", city={"type": "string"}, unit={"type": "string", "enum": ["c", "f"]}),
    tool("get_time", zone={"type": "string"}),
]


@pytest.fixture
def client(sim_server: SimServer) -> Iterator[OpenAI]:
    with OpenAI(api_key="k", base_url=sim_server.base_url, max_retries=0) as client:
        yield client


def record_of(server: SimServer, rid: str) -> dict[str, Any]:
    """The introspection record of the request that produced response ``rid``."""
    log = server.connection(server.oracle(rid)["connection_id"])["log"]
    return cast(dict[str, Any], next(r for r in log if r["response_id"] == rid))


def http_events(client: OpenAI, **fields: Any) -> list[Any]:
    fields.setdefault("store", False)
    with client.responses.create(model=MODEL, stream=True, **fields) as stream:
        return list(stream)


def ws_events(client: OpenAI, **fields: Any) -> list[Any]:
    fields.setdefault("store", False)
    with client.responses.connect() as conn:
        conn.response.create(model=MODEL, **fields)
        # ResponsesConnection.recv() has no timeout; read the same bytes with one.
        events = [conn.parse_event(conn._connection.recv(timeout=TIMEOUT, decode=False))]
        while events[-1].type not in DONE:
            events.append(conn.parse_event(conn._connection.recv(timeout=TIMEOUT, decode=False)))
    return events


def model_output(events: list[Any]) -> list[tuple[str, ...]]:
    """What the model said, without the random item ids: text, and calls' names and arguments."""
    assert events[-1].type == "response.completed", events[-1]
    out: list[tuple[str, ...]] = []
    for item in events[-1].response.output:
        if item.type == "message":
            out.append(("text", item.content[0].text))
        else:
            out.append((item.type, item.call_id, item.name, item.arguments))
    return out


@pytest.mark.parametrize(
    ("fields", "calls"),
    [
        ({"input": "/chat 60 the history of tea"}, []),
        (
            {"input": "/parallel 3 compare weather in three cities", "tools": TOOLS},
            ["get_weather", "get_time", "get_weather"],
        ),
        ({"input": "/research 2 use get_time", "tools": TOOLS}, ["get_time"]),
    ],
    ids=["text", "parallel-calls", "one-call"],
)
def test_http_streaming_gives_the_same_model_output_as_the_websocket(
    client: OpenAI, fields: dict[str, Any], calls: list[str]
) -> None:
    over_http = http_events(client, **fields)
    over_ws = ws_events(client, **fields)
    output = model_output(over_http)
    assert output == model_output(over_ws)
    assert [x[2] for x in output if x[0] == "function_call"] == calls
    assert all(json.loads(x[3]) for x in output if x[0] == "function_call")
    assert [e.type for e in over_http] == [e.type for e in over_ws]
    assert [e.sequence_number for e in over_http] == list(range(len(over_http)))
    assert "".join(e.delta for e in over_http if e.type.endswith(".delta")) == "".join(
        x[-1] for x in output
    )


def test_http_without_streaming_returns_the_full_response(client: OpenAI) -> None:
    response = client.responses.create(model=MODEL, input="/chat 40 rivers", store=False)
    streamed = http_events(client, input="/chat 40 rivers")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.id.startswith("resp_")
    assert response.output_text == streamed[-1].response.output_text
    assert response.output_text.count(" ") > 10
    assert response.usage is not None
    assert response.usage.output_tokens == streamed[-1].response.usage.output_tokens > 0
    assert response.usage.input_tokens_details.cached_tokens == 0


def test_a_store_true_http_chain_is_hydrated(client: OpenAI, sim_server: SimServer) -> None:
    first = client.responses.create(model=MODEL, input="/lookup the tides", tools=TOOLS)
    call = first.output[0]
    assert call.type == "function_call"
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "HIGH@6"}],
        tools=TOOLS,
    )
    assert second.status == "completed"
    assert second.previous_response_id == first.id
    assert "HIGH@6" in second.output_text  # the answer read the tool output through the chain
    record = record_of(sim_server, second.id)
    assert (record["mode"], record["cache"]) == ("delta", "hydrated")
    assert record["context_items"] == 3  # user message, call, output: the whole chain
    assert sim_server.oracle(second.id)["cache"] == "hydrated"


def test_an_unknown_previous_response_over_http_is_a_bad_request(client: OpenAI) -> None:
    unstored = client.responses.create(model=MODEL, input="/chat 10 x", store=False)
    for missing in ("resp_never_existed", unstored.id):
        with pytest.raises(openai.BadRequestError) as refused:
            client.responses.create(model=MODEL, input="more", previous_response_id=missing)
        assert refused.value.status_code == 400
        assert refused.value.code == "previous_response_not_found"
        assert refused.value.param == "previous_response_id"


@pytest.mark.parametrize(("name", "value"), [("stream_id", "main"), ("generate", False)])
def test_websocket_only_fields_are_rejected_over_http(
    client: OpenAI, name: str, value: object
) -> None:
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as refused:
            client.responses.create(
                model=MODEL, input="hi", store=False, stream=stream, extra_body={name: value}
            )
        assert refused.value.status_code == 400
        assert refused.value.param == name


def test_retrieve_returns_a_stored_response_and_404s_for_unknown_ids(client: OpenAI) -> None:
    stored = client.responses.create(model=MODEL, input="/chat 20 bees", store=True)
    fetched = client.responses.retrieve(stored.id)
    assert fetched.id == stored.id
    assert fetched.status == "completed"
    assert fetched.output_text == stored.output_text
    unstored = client.responses.create(model=MODEL, input="/chat 20 bees", store=False)
    for missing in ("resp_unknown", unstored.id):
        with pytest.raises(openai.NotFoundError) as absent:
            client.responses.retrieve(missing)
        assert absent.value.status_code == 404


def test_a_mid_stream_fault_ends_the_http_stream_with_response_failed(client: OpenAI) -> None:
    events = http_events(
        client,
        input="/chat 20 storms",
        extra_headers={"X-Sim-Faults": "response_failed=1:server_error"},
    )
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.failed",
    ]
    failed = events[-1].response
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.code == "server_error"
    assert http_events(client, input="/chat 20 storms")[-1].type == "response.completed"


def test_the_sdk_lists_the_models_a_picker_offers(client: OpenAI) -> None:
    """``GET /v1/models``, as the OpenAI API answers it: the playground's model picker asks."""
    models = client.models.list()
    assert [model.id for model in models.data] == ["sim", "sim-mini", "sim-large"]
    assert {model.object for model in models.data} == {"model"}
