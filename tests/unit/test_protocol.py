"""The browser socket's frames: every accepted action, and every refusal's stable code."""

from __future__ import annotations

import json
from typing import Any

import pytest

from playground.protocol import MAX_MESSAGE_CHARS, Action, FrameError, ack_count, parse_frame

pytestmark = pytest.mark.unit


def frame(**fields: Any) -> str:
    return json.dumps({**fields, "HEADERS": {"HX-Request": "true"}})


def refusal(text: str | None, data: bytes | None = None) -> str:
    with pytest.raises(FrameError) as caught:
        parse_frame(text, data)
    assert caught.value.message  # every refusal says what to do
    return caught.value.code


@pytest.mark.parametrize(
    ("text", "action"),
    [
        (frame(action="send", message="  hello\n"), Action("send", "hello")),
        (frame(action="stop"), Action("stop")),
        (frame(action="stop", message="ignored"), Action("stop")),
        (frame(action="ack", received=0), Action("ack", received=0)),
        (frame(action="ack", received=64), Action("ack", received=64)),
        (
            frame(action="tool_output", call_id="call_1", output=""),
            Action("tool_output", "", "call_1"),
        ),
        (
            frame(action="tool_output", call_id="call_1", output=" 42 "),
            Action("tool_output", " 42 ", "call_1"),  # an output is kept as typed
        ),
        (frame(action="approve", call_id="c", decision="yes"), Action("approve", "yes", "c")),
        (frame(action="approve", call_id="c", decision="no"), Action("approve", "no", "c")),
        ('{"action": "send", "message": "no headers"}', Action("send", "no headers")),
    ],
)
def test_accepted_actions(text: str, action: Action) -> None:
    assert parse_frame(text, None) == action


def test_a_message_at_the_limit_is_accepted() -> None:
    assert parse_frame(frame(action="send", message="x" * MAX_MESSAGE_CHARS), None).name == "send"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{", "invalid_json"),
        ('{"action": "send", "message": NaN}', "invalid_json"),
        ("[1, 2]", "invalid_frame"),
        ('"send"', "invalid_frame"),
        (frame(action="dance"), "unknown_action"),
        (frame(message="no action"), "unknown_action"),
        (frame(action="ack"), "invalid_frame"),
        (frame(action="ack", received=-1), "invalid_frame"),
        (frame(action="ack", received=True), "invalid_frame"),
        (frame(action="ack", received="8"), "invalid_frame"),
        (frame(action="ack", received=1.5), "invalid_frame"),
        (frame(action="send"), "empty_message"),
        (frame(action="send", message=" \n\t"), "empty_message"),
        (frame(action="send", message=["hi"]), "empty_message"),
        (frame(action="send", message="x" * (MAX_MESSAGE_CHARS + 1)), "message_too_long"),
        (frame(action="send", message="a\ud800b"), "invalid_text"),
        (frame(action="tool_output", output="x"), "invalid_frame"),
        (frame(action="tool_output", call_id="", output="x"), "invalid_frame"),
        (frame(action="tool_output", call_id=7, output="x"), "invalid_frame"),
        (frame(action="tool_output", call_id="c"), "invalid_frame"),
        (frame(action="tool_output", call_id="c", output=42), "invalid_frame"),
        (frame(action="tool_output", call_id="c", output="\udfff"), "invalid_text"),
        (frame(action="tool_output", call_id="c\ud800", output="x"), "invalid_text"),
        (frame(action="approve", call_id="c"), "invalid_frame"),
        (frame(action="approve", call_id="c", decision="maybe"), "invalid_frame"),
        (frame(action="approve", call_id="c", decision=True), "invalid_frame"),
    ],
)
def test_refusals(text: str, code: str) -> None:
    assert refusal(text) == code


def test_a_binary_frame_is_refused() -> None:
    assert refusal(None, b'{"action": "stop"}') == "binary_frame"


def test_a_frame_over_the_size_limit_is_refused_before_parsing(settings: Any) -> None:
    accented = json.dumps({"action": "send", "message": "é" * 30}, ensure_ascii=False)
    plain = json.dumps({"action": "send", "message": "e" * 30})
    settings.MAX_FRAME_BYTES = len(plain)
    assert parse_frame(plain, None).message == "e" * 30
    assert len(accented) == len(plain)
    assert refusal(accented) == "frame_too_large"  # bytes count, not characters


def test_a_frame_nested_too_deep_is_refused(settings: Any) -> None:
    settings.MAX_JSON_DEPTH = 8
    deep = '{"action": "send", "message": "x", "a": ' + "[" * 20 + "]" * 20 + "}"
    assert refusal(deep) == "too_deep"
    # Brackets inside a string do not nest.
    assert parse_frame(frame(action="send", message="[" * 50), None).message == "[" * 50


def test_ack_count_reads_only_a_valid_ack() -> None:
    assert ack_count(frame(action="ack", received=16), None) == 16
    assert ack_count(frame(action="stop"), None) is None
    assert ack_count(frame(action="ack", received=-1), None) is None
    assert ack_count(None, b"\x00") is None
