"""playground/fragments.py builds the stream's most frequent fragments without the template
engine; the page renders the same partials with it. Both must give the same HTML."""

from __future__ import annotations

from typing import Any

import pytest
from django.template.loader import render_to_string

from playground import fragments
from tests.unit.helpers import step

PAGE = "playground/session.html"

STEPS: list[dict[str, Any]] = [
    {},
    {"ttft_ms": None, "duration_ms": 7.25, "turn_position": 4, "started_ms": 2.5},
    {"mode": "delta", "route": "delta", "socket": "reused", "ttft_ms": 0.5},
    {"mode": "create", "route": "full", "lane": "l3", "ttft_ms": 2.5, "duration_ms": 1234.5},
    {"mode": "delta", "route": "lane", "status": "failed", "retries": 1, "tool_ms": 0.4},
    {"mode": "warm", "status": "stopped", "retries": 2, "tool_ms": 12.5, "output_tokens": 3},
    {"status": "interrupted", "input_tokens": 10, "cached_tokens": 8, "duration_ms": -0.4},
    {"model": "sim", "status": "incomplete", "input_tokens": 7, "output_tokens": 2},
    {"model": "gpt-5", "input_tokens": 120_000, "cached_tokens": 100_000, "output_tokens": 900},
    {"mode": "create", "lane": 'l"<&>', "turn_position": None, "started_ms": 999_999.5},
]


@pytest.mark.parametrize("fields", STEPS)
@pytest.mark.parametrize("oob", [False, True])
def test_a_step_line_is_the_templates_step_partial(fields: dict[str, Any], oob: bool) -> None:
    made = step(**fields)
    expected = render_to_string(f"{PAGE}#step", {"row": {"step": made}, "oob": oob})
    assert fragments.step_line(made, oob) == expected


@pytest.mark.parametrize(
    ("key", "kind", "label"),
    [("msg_1", "message", "assistant"), ("fc_2", "function_call", 'web<search>&"x"')],
)
def test_a_live_item_is_the_templates_live_partial(key: str, kind: str, label: str) -> None:
    expected = render_to_string(f"{PAGE}#live", {"key": key, "kind": kind, "label": label})
    assert fragments.live_item(key, kind, label) == expected


@pytest.mark.parametrize(
    ("value", "shown"), [(0, "0"), (0.5, "1"), (2.5, "3"), (-0.4, "0"), (3.4999, "3"), (12, "12")]
)
def test_whole_numbers_round_as_floatformat_does(value: float, shown: str) -> None:
    assert fragments.whole(value) == shown
