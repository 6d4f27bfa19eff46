"""What a step and a run cost, from ``MODEL_PRICES`` (USD per million tokens: input, cached
input, output). Cached input is priced as cached. Unknown: a model without a price, or a step
whose upstream never reported its usage (it was stopped or broke before its terminal event)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from django.conf import settings

from agents.models import Step

PER_TOKENS = 1_000_000


def step_cost(step: Step) -> float | None:
    prices = settings.MODEL_PRICES.get(step.model)
    if prices is None or not (step.input_tokens or step.output_tokens):
        return None
    uncached = max(step.input_tokens - step.cached_tokens, 0)
    fresh, cached, out = prices
    total = uncached * fresh + step.cached_tokens * cached + step.output_tokens * out
    return float(total / PER_TOKENS)


def run_cost(steps: Iterable[Step]) -> float | None:
    """The sum of the steps that have a cost; None when none has."""
    costs = [cost for cost in map(step_cost, steps) if cost is not None]
    return sum(costs) if costs else None


def usd(amount: float | None) -> str:
    """$0.0123, $0.000456: four significant digits under a dollar; "" when unknown."""
    if amount is None:
        return ""
    if amount >= 1:
        return f"${amount:,.2f}"
    if amount <= 0:
        return "$0"
    decimals = 3 - math.floor(math.log10(amount))  # four significant digits, never 1e-05
    return "$" + f"{amount:.{decimals}f}".rstrip("0")
