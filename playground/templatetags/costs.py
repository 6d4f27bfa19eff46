"""``{{ step|step_cost }}``: a step's cost as the step line shows it ("" when unknown)."""

from __future__ import annotations

from django import template

from agents.models import Step
from playground import costs

register = template.Library()


@register.filter
def step_cost(step: Step) -> str:
    return costs.usd(costs.step_cost(step))
