"""The fragments a stream sends most, built in Python rather than by the template engine.

A step line, a live item and a text delta go out for every step and token of every run: the
engine's per-render cost (context stack, variable lookups, filters) was the largest part of
rendering a run's events. The templates keep the same partials for the page itself, and
tests/unit/test_fragments.py checks that both give the same HTML.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from html import escape

from agents.models import Step
from playground import costs


def whole(value: float) -> str:
    """Django's ``floatformat:0``: rounded half away from zero, no decimals, never "-0"."""
    return str(int(Decimal(str(value)).quantize(Decimal(1), ROUND_HALF_UP)))


def step_line(step: Step, oob: bool = False) -> str:
    """The ``step`` partial of templates/playground/session.html."""
    parts = [f"step {escape(step.mode)}"]
    if step.route and step.route != step.mode:
        parts.append(f" · via {escape(step.route)}")
    if step.lane:
        parts.append(f" · lane {escape(step.lane)}")
    parts.append(f" · socket {escape(step.socket)} · {step.bytes_sent} B sent")
    if step.ttft_ms is not None:
        parts.append(f" · TTFT {whole(step.ttft_ms)} ms")
    parts.append(f" · {whole(step.duration_ms)} ms · ")
    if step.status == "completed" or step.input_tokens or step.output_tokens:
        parts.append(
            f"{step.input_tokens} in ({step.cached_tokens} cached) · {step.output_tokens} out"
        )
    else:
        parts.append("usage not reported")
    cost = costs.usd(costs.step_cost(step))
    if cost:
        parts.append(f" · {escape(cost)}")
    if step.tool_ms:
        parts.append(f" · tools {whole(step.tool_ms)} ms")
    if step.retries:
        parts.append(f" · {step.retries} retr{'y' if step.retries == 1 else 'ies'}")
    if step.status != "completed":
        parts.append(f" · {escape(step.status)}")
    swap = ' hx-swap-oob="true"' if oob else ""
    opening = (
        f'<div class="step" data-mode="{escape(step.mode)}" '
        f'id="step-{step.turn_position}-{whole(step.started_ms)}"{swap}>'
    )
    return opening + "".join(parts) + "</div>"


def live_item(key: str, kind: str, label: str) -> str:
    """The ``live`` partial: an item while it streams."""
    key, kind = escape(key), escape(kind)
    return (
        f'<div id="live-{key}" class="item live {kind}"><div class="who">{escape(label)}</div>'
        f'<div class="body"><p id="live-{key}-text" class="streaming"></p></div></div>'
    )
