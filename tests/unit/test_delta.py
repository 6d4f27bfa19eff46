"""The delta rule (agents/upstream/delta.py): a delta only when the socket's cached response
has the same fields and the new context extends it with every open call answered."""

from __future__ import annotations

from typing import Any

import pytest

from agents.upstream.delta import Chain, fingerprint, plan

pytestmark = pytest.mark.unit

Item = dict[str, Any]
FIELDS: dict[str, Any] = {"model": "sim", "store": False, "instructions": "Be brief."}


def user(text: str) -> Item:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def reply(text: str, **delivery: Any) -> Item:
    content = [{"type": "output_text", "text": text}]
    return {"type": "message", "role": "assistant", "content": content, **delivery}


def call(call_id: str) -> Item:
    return {"type": "function_call", "call_id": call_id, "name": "f", "arguments": "{}"}


def output(call_id: str) -> Item:
    return {"type": "function_call_output", "call_id": call_id, "output": "ok"}


def chain(context: list[Item], fields: dict[str, Any] = FIELDS, *open_calls: str) -> Chain:
    prints = tuple(fingerprint(i) for i in context)
    return Chain(fingerprint(fields), prints, "resp_1", frozenset(open_calls))


HISTORY = [user("one"), reply("two")]


def test_without_a_chain_the_whole_context_is_created() -> None:
    chosen = plan(None, FIELDS, HISTORY)
    assert (chosen.mode, chosen.input, chosen.previous_response_id) == ("create", HISTORY, None)
    assert chosen.input is not HISTORY  # a copy: the caller's list is not shared


def test_a_context_that_extends_the_chain_sends_only_its_new_items() -> None:
    chosen = plan(chain(HISTORY), FIELDS, [*HISTORY, user("three")])
    assert (chosen.mode, chosen.input, chosen.previous_response_id) == (
        "delta",
        [user("three")],
        "resp_1",
    )


def test_the_context_the_chain_holds_is_a_delta_of_nothing() -> None:
    """What a prewarm checks: the socket already serves this context."""
    chosen = plan(chain(HISTORY), FIELDS, HISTORY)
    assert (chosen.mode, chosen.input) == ("delta", [])


def test_delivery_fields_key_order_and_nulls_do_not_break_the_chain() -> None:
    streamed = [user("one"), reply("two", id="msg_9", status="completed", annotations=[])]
    stored = [user("one"), {"content": reply("two")["content"], "role": "assistant",
                            "type": "message", "logprobs": None}]  # fmt: skip
    assert plan(chain(streamed), FIELDS, [*stored, user("x")]).mode == "delta"
    assert plan(chain(HISTORY), {**FIELDS, "tools": None}, [*HISTORY, user("x")]).mode == "delta"


@pytest.mark.parametrize(
    "fields",
    [
        {**FIELDS, "instructions": "Be verbose."},
        {**FIELDS, "model": "other"},
        {**FIELDS, "store": True},
        {key: value for key, value in FIELDS.items() if key != "instructions"},
        {**FIELDS, "tools": [{"type": "function", "name": "f", "parameters": {}}]},
    ],
)
def test_changed_request_fields_mean_a_full_create(fields: dict[str, Any]) -> None:
    chosen = plan(chain(HISTORY), fields, [*HISTORY, user("three")])
    assert (chosen.mode, chosen.previous_response_id) == ("create", None)
    assert chosen.input == [*HISTORY, user("three")]


@pytest.mark.parametrize(
    "context",
    [
        [user("one")],  # shorter than what the upstream holds
        [user("edited"), reply("two"), user("three")],  # an edited history
        [reply("two"), user("one"), user("three")],  # reordered
        [user("one"), reply("two, and more"), user("three")],  # a changed reply
    ],
)
def test_a_context_that_does_not_extend_the_chain_means_a_full_create(
    context: list[Item],
) -> None:
    chosen = plan(chain(HISTORY), FIELDS, context)
    assert (chosen.mode, chosen.input) == ("create", context)


def test_a_delta_must_answer_every_open_call() -> None:
    history = [user("one"), call("c1"), call("c2")]
    cached = chain(history, FIELDS, "c1", "c2")
    assert plan(cached, FIELDS, [*history, output("c1")]).mode == "create"
    assert plan(cached, FIELDS, [*history, output("c1"), user("x")]).mode == "create"
    both = plan(cached, FIELDS, [*history, output("c2"), output("c1")])
    assert (both.mode, both.input) == ("delta", [output("c2"), output("c1")])


def test_fingerprints_are_canonical() -> None:
    assert fingerprint({"b": 1, "a": [1, {"d": None, "c": "é"}]}) == '{"a":[1,{"c":"é"}],"b":1}'
    assert fingerprint(reply("x", id="a")) == fingerprint(reply("x", id="b"))
    assert fingerprint(user("x")) != fingerprint(user("y"))
