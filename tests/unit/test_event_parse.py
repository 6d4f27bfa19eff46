"""agents/upstream/turn.py ``parse``: orjson first, the stdlib for what orjson refuses, so a
hostile or odd upstream frame means what it always did: garbage is skipped (None), a lone
surrogate becomes U+FFFD, NaN is a number."""

from __future__ import annotations

import json
import math
import time

import pytest

from agents.upstream.turn import parse

pytestmark = pytest.mark.unit


def test_an_ordinary_event_parses_from_bytes_and_from_text() -> None:
    raw = '{"type":"response.output_text.delta","delta":" tides \\ud83c\\udf0a"}'
    assert (
        parse(raw)
        == parse(raw.encode())
        == {
            "type": "response.output_text.delta",
            "delta": " tides \U0001f30a",
        }
    )


@pytest.mark.parametrize("raw", [b'{"delta":"a\\ud800b"}', '{"delta":"a\\udc00b"}'])
def test_a_lone_surrogate_becomes_a_replacement_character(raw: bytes | str) -> None:
    assert parse(raw) == {"delta": "a\ufffdb"}


def test_nan_means_what_the_stdlib_makes_of_it() -> None:
    assert math.isnan(parse(b'{"x": NaN}')["x"])


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"delta": "\xff\xfe"}',  # not UTF-8
        b"[" * 100_000 + b"]" * 100_000,  # nested past both parsers' limits
        b'{"a": ' * 100_000 + b"1" + b"}" * 100_000,
    ],
)
def test_garbage_is_none(raw: bytes) -> None:
    assert parse(raw) is None


def test_deeper_than_orjson_goes_is_what_the_stdlib_makes_of_it() -> None:
    raw = b'{"a": ' * 5_000 + b"1" + b"}" * 5_000  # orjson stops at 1,024 levels
    assert parse(raw) == json.loads(raw)


def test_ten_megabytes_of_text_parse_quickly() -> None:
    raw = b'{"type":"response.output_text.delta","delta":"' + b"x" * 10_000_000 + b'"}'
    started = time.monotonic()
    assert len(parse(raw)["delta"]) == 10_000_000
    assert time.monotonic() - started < 1.0
