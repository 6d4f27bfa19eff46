"""playground/costs.py and MODEL_PRICES: what a step and a run cost, cached input as cached."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from agents.models import Step
from playground.costs import run_cost, step_cost, usd
from playground.env import env_prices

pytestmark = pytest.mark.unit


def step(**fields: Any) -> Step:
    values: dict[str, Any] = {"model": "gpt-5-mini", "input_tokens": 2_000, "cached_tokens": 0}
    return Step(**{**values, "output_tokens": 100, **fields})


def test_input_cached_input_and_output_are_priced_apart() -> None:
    # gpt-5-mini: $0.25, $0.025 cached, $2.00 per million tokens.
    assert step_cost(step()) == pytest.approx((2_000 * 0.25 + 100 * 2.0) / 1e6)
    cached = step_cost(step(cached_tokens=1_500))
    assert cached == pytest.approx((500 * 0.25 + 1_500 * 0.025 + 100 * 2.0) / 1e6)


def test_an_unknown_model_or_an_unreported_usage_has_no_cost() -> None:
    assert step_cost(step(model="my-own-model")) is None
    assert step_cost(step(model="")) is None  # a step from before steps kept their model
    assert step_cost(step(input_tokens=0, output_tokens=0)) is None  # stopped mid-stream


def test_a_run_costs_what_its_priced_steps_cost() -> None:
    steps = [step(), step(model="unknown"), step(cached_tokens=2_000)]
    assert run_cost(steps) == pytest.approx(step_cost(steps[0]) + step_cost(steps[2]))  # type: ignore[operator]
    assert run_cost([step(model="unknown")]) is None


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (None, ""),
        (0.0, "$0"),
        (0.000123456, "$0.0001235"),
        (3.015e-05, "$0.00003015"),  # never "$3.015e-05"
        (0.0125, "$0.0125"),
        (3.14159, "$3.14"),
    ],
)
def test_amounts_show_four_significant_digits_under_a_dollar(
    amount: float | None, shown: str
) -> None:
    assert usd(amount) == shown


def test_model_prices_from_the_environment_add_to_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = {"a": (1.0, 0.1, 2.0)}
    monkeypatch.setenv("PRICES_TEST", '{"b": [0.5, 0.05, 4]}')
    assert env_prices("PRICES_TEST", default) == {"a": (1.0, 0.1, 2.0), "b": (0.5, 0.05, 4.0)}
    for bad in ("nope", "[1, 2, 3]", '{"b": [1, 2]}', '{"b": [1, -2, 3]}', '{"b": ["1", 2, 3]}'):
        monkeypatch.setenv("PRICES_TEST", bad)
        with pytest.raises(ImproperlyConfigured, match="PRICES_TEST"):
            env_prices("PRICES_TEST", default)
