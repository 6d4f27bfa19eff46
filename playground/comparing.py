"""Compare: the form that defines one (a prompt, 2-4 columns), the race preset, and the results
of its rounds (per column: time, time per step, bytes sent upstream per step, cached input
tokens, cost, and the difference from the first column) with one waterfall for all columns."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings

from agents.models import Column, Compare, Lap, Session, Step, Tool
from playground import costs
from playground import waterfall as waterfalls
from playground.forms import TextForm, TextModelForm, limit_length

MAX_COLUMNS = 4
MIN_COLUMNS = 2
RACE_STEPS = 20  # tool calls: the simulator's calibration task (docs/simulator.md)
RACE_PROMPT = f"/research {RACE_STEPS} how websocket mode speeds up agent loops"
# The race: one agent task over WebSocket and over HTTP (store off, then on).
RACE = (
    ("WebSocket", "websocket", False),
    ("HTTP, store off", "http", False),
    ("HTTP, store on", "http", True),
)


class PromptForm(TextForm):
    prompt = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Every column gets this message, after the conversation shown in the session.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit_length(self.fields["prompt"], "The prompt", 100_000)


class ColumnForm(TextModelForm):
    include = forms.BooleanField(required=False, label="Run this column")
    tools = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)

    field_order = ["include", "label", "model", "instructions", "transport", "store", "max_steps"]

    class Meta:
        model = Column
        fields = ["label", "model", "instructions", "transport", "store", "max_steps"]
        widgets = {
            "instructions": forms.Textarea(attrs={"rows": 2}),
            "model": forms.TextInput(attrs={"list": "models", "autocomplete": "off"}),
        }

    def __init__(self, *args: Any, tools: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["tools"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = [(name, name) for name in tools]
        limit_length(self.fields["instructions"], "Instructions", settings.QUOTA_INSTRUCTIONS_CHARS)

    @property
    def included(self) -> bool:
        """Whether the user ticked this column (read before validating: an unused column's
        fields are never checked)."""
        widget = self.fields["include"].widget
        return bool(widget.value_from_datadict(self.data, self.files, self.add_prefix("include")))


def column_forms(session: Session, tools: list[Tool], data: Any = None) -> list[ColumnForm]:
    """Four columns to fill in: the first two on, like the session; the race's transports."""
    names = [tool.name for tool in tools]
    forms_ = []
    for index in range(MAX_COLUMNS):
        label, transport, store = RACE[index] if index < len(RACE) else ("Column 4", "http", True)
        initial = {
            "include": index < MIN_COLUMNS,
            "label": label,
            "model": session.model,
            "instructions": session.instructions,
            "transport": transport,
            "store": store,
            "max_steps": session.max_steps,
            "tools": names,
        }
        forms_.append(ColumnForm(data, prefix=f"c{index}", initial=initial, tools=names))
    return forms_


def chosen(forms_: list[ColumnForm]) -> tuple[list[ColumnForm], str]:
    """The included columns, or why the compare cannot be made."""
    included = [form for form in forms_ if form.included]
    if not MIN_COLUMNS <= len(included) <= MAX_COLUMNS:
        return [], f"Choose {MIN_COLUMNS} to {MAX_COLUMNS} columns."
    if not all(form.is_valid() for form in included):
        return [], "Some columns have errors: see below."
    return included, ""


def create(session: Session, prompt: str, forms_: list[ColumnForm], after: int | None) -> Compare:
    compare = Compare.objects.create(session=session, prompt=prompt, after=after)
    for index, form in enumerate(forms_):
        column = form.save(commit=False)
        column.compare, column.index = compare, index
        column.tools = list(form.cleaned_data.get("tools") or [])
        column.save()
    return compare


def create_race(
    session: Session, tools: list[Tool], after: int | None, prompt: str = ""
) -> Compare:
    """The race preset: the same task, model, instructions, tools and simulator over each
    transport."""
    compare = Compare.objects.create(
        session=session, prompt=prompt or RACE_PROMPT, after=after, preset="race"
    )
    for index, (label, transport, store) in enumerate(RACE):
        Column.objects.create(
            compare=compare,
            index=index,
            label=label,
            model=session.model,
            instructions=session.instructions,
            transport=transport,
            store=store,
            max_steps=max(session.max_steps, RACE_STEPS + 1),
            tools=[tool.name for tool in tools],
        )
    return compare


# -- results ------------------------------------------------------------------------------------


@dataclass
class LapResult:
    total_ms: float
    steps: int
    ms_per_step: float
    bytes_per_step: float
    cached_tokens: int
    cost: float


def lap_result(steps: Sequence[Step]) -> LapResult:
    ran = [s for s in steps if s.mode != "warm"]
    count = len(ran) or 1
    return LapResult(
        total_ms=waterfalls.run_ms(ran),
        steps=len(ran),
        ms_per_step=sum(s.duration_ms for s in ran) / count,
        bytes_per_step=sum(s.bytes_sent for s in ran) / count,
        cached_tokens=sum(s.cached_tokens for s in ran),
        cost=costs.run_cost(ran) or 0.0,
    )


CHART_WIDTH = 960  # px: a compare's chart spans its page (a session's waterfall is narrower)
CHART_MARGIN = 24  # px right of the axis, for its last tick's label
LABEL_CHARS = 18  # a column's label in the chart, before its step number


def shorten(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1].rstrip() + "…"


MEDIANS = ("total_ms", "steps", "ms_per_step", "bytes_per_step", "cached_tokens", "cost")


def results(
    columns: Sequence[Column], laps: Sequence[Sequence[Sequence[Step]]]
) -> list[dict[str, Any]]:
    """Per column, the median over rounds (``laps[round][column]``) and its difference from the
    first column's median time."""
    rows = []
    for index, column in enumerate(columns):
        runs = [lap_result(round_[index]) for round_ in laps if index < len(round_)]
        if not runs:
            continue
        rows.append(
            {
                "column": column,
                "rounds": len(runs),
                **{name: statistics.median(getattr(run, name) for run in runs) for name in MEDIANS},
            }
        )
    if rows and rows[0]["total_ms"]:
        first = rows[0]["total_ms"]
        for row in rows:
            row["diff_pct"] = (row["total_ms"] - first) / first * 100
    for row in rows:
        row["cost_text"] = costs.usd(row["cost"])
    return rows


def shared_waterfall(columns: Sequence[Column], lap: Sequence[Sequence[Step]]) -> dict[str, Any]:
    """One round's chart: every column's steps on one time axis, a row per step."""
    ran = [[s for s in steps if s.mode != "warm"] for steps in lap]
    span = max((waterfalls.run_ms(steps) for steps in ran), default=0.0) or 1.0
    scale = (CHART_WIDTH - waterfalls.LABELS) / span  # px per ms
    rows: list[dict[str, Any]] = []
    for index, steps in enumerate(ran):
        label = columns[index].label if index < len(columns) else f"Column {index + 1}"
        for number, step in enumerate(sorted(steps, key=lambda s: s.started_ms), start=1):
            x = waterfalls.LABELS + step.started_ms * scale
            model = max(step.duration_ms * scale, 1.0)
            rows.append(
                {
                    "y": len(rows) * waterfalls.ROW,
                    "x": round(x, 1),
                    "model": round(model, 1),
                    "tool_x": round(x + model, 1),
                    "tool": round(step.tool_ms * scale, 1),
                    "label": f"{shorten(label)} {number}",
                    "column": index,
                    "step": step,
                }
            )
    axis_y = len(rows) * waterfalls.ROW + 4
    ticks = [
        {"x": round(waterfalls.LABELS + at * scale, 1), "label": waterfalls.duration(at)}
        for at in waterfalls.tick_times(span)
    ]
    return {
        "rows": rows,
        "width": CHART_WIDTH,
        "view_width": CHART_WIDTH + CHART_MARGIN,
        "height": axis_y + waterfalls.AXIS,
        "axis_y": axis_y,
        "ticks": ticks,
        "span_ms": span,
    }


def laps_of(compare: Compare) -> tuple[list[Column], list[list[list[Step]]]]:
    """The compare's columns and, per round, each column's steps (synchronous)."""
    columns = list(compare.columns.all())
    laps = list(Lap.objects.filter(column__compare=compare).order_by("round", "column__index"))
    steps = Step.objects.filter(
        session_id=compare.session_id, turn_position__in=[lap.message for lap in laps]
    )
    by_message: dict[int, list[Step]] = {}
    for step in steps.order_by("id"):
        assert step.turn_position is not None
        by_message.setdefault(step.turn_position, []).append(step)
    rounds: dict[int, list[list[Step]]] = {}
    for lap in laps:
        rounds.setdefault(lap.round, []).append(by_message.get(lap.message, []))
    return columns, [rounds[number] for number in sorted(rounds)]
