"""The compare pages: define a compare (or the race, in one click), then watch its columns
stream side by side with their results. The board (columns and results) is one partial, drawn
by the page view and by the page's socket on every (re)sync (playground/consumers.py)."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from agents.models import Compare, Item, Session, Step, Tool
from agents.run import transcript, tree
from playground import comparing, model_picker
from playground.access import visible_sessions
from playground.render import transcript_rows

PAGE = "playground/compare.html"


def _session(request: HttpRequest, session_id: str) -> Session:
    owned = visible_sessions(request.user, request.session.session_key)
    return get_object_or_404(owned, pk=session_id)


@require_http_methods(["GET", "POST"])
def compare_new(request: HttpRequest, session_id: str) -> HttpResponse:
    session = _session(request, session_id)
    tools = list(Tool.objects.filter(session=session))
    tip = transcript.branch_now(session).tip
    prompt = comparing.PromptForm(request.POST if request.method == "POST" else None)
    columns = comparing.column_forms(session, tools, request.POST or None)
    problem = ""
    if request.method == "POST":
        if request.POST.get("preset") == "race":
            # One click: the race's task unless the form names another (the benchmark's).
            text = request.POST.get("prompt") or comparing.RACE_PROMPT
            if prompt.is_valid() or not request.POST.get("prompt"):
                with transaction.atomic():
                    compare = comparing.create_race(session, tools, tip, text)
                return redirect(reverse("compare", args=[session.pk, compare.pk]) + "?start=1")
            problem = "The race's prompt: " + " ".join(
                str(e) for e in prompt.errors.get("prompt", [])
            )
        included, problem = comparing.chosen(columns)
        if prompt.is_valid() and included:
            with transaction.atomic():
                compare = comparing.create(session, prompt.cleaned_data["prompt"], included, tip)
            return redirect(reverse("compare", args=[session.pk, compare.pk]) + "?start=1")
    context = {
        "session": session,
        "prompt_form": prompt,
        "columns": columns,
        "problem": problem,
        "model_names": async_to_sync(model_picker.model_names)(),
        "race": comparing.RACE,
        "race_prompt": comparing.RACE_PROMPT,
    }
    status = 422 if request.method == "POST" else 200
    return render(request, "playground/compare_new.html", context, status=status)


def compare_detail(request: HttpRequest, session_id: str, compare_id: int) -> HttpResponse:
    session = _session(request, session_id)
    compare = get_object_or_404(Compare, pk=compare_id, session=session)
    context = {
        "session": session,
        "compare": compare,
        "board": board_context(compare, None),
        "start": request.GET.get("start") == "1"
        and not compare.columns.filter(laps__isnull=False).exists(),
    }
    return render(request, PAGE, context)


def board_context(compare: Compare, below: int | None) -> dict[str, Any]:
    """The columns of the compare's latest round (their items below ``below``) and the results
    of every round (synchronous: the database thread)."""
    columns, laps = comparing.laps_of(compare)
    latest = list(compare.columns.all())
    messages = {}
    last = max((lap.round for c in latest for lap in c.laps.all()), default=None)
    if last is not None:
        for column in latest:
            found = [lap for lap in column.laps.all() if lap.round == last]
            if found:
                messages[column.index] = found[0].message
    links = list(
        Item.objects.filter(session_id=compare.session_id).values_list("position", "parent")
    )
    cells = []
    for column in columns:
        message = messages.get(column.index)
        rows: list[dict[str, Any]] = []
        if message is not None:
            path = tree.branch(links, message).path
            after = path[path.index(message) + 1 :]
            kept = [p for p in after if below is None or p < below]
            items = list(
                Item.objects.filter(session_id=compare.session_id, position__in=kept).order_by(
                    "position"
                )
            )
            steps = {s.pk: s for s in Step.objects.filter(pk__in={i.step_id for i in items})}
            rows = [
                row
                for row in transcript_rows(items, steps, open_run=message)
                if "waterfall" not in row
            ]
        cells.append({"column": column, "rows": rows})
    return {
        "cells": cells,
        "results": comparing.results(columns, laps),
        "chart": comparing.shared_waterfall(columns, laps[-1]) if laps else None,
        "rounds": len(laps),
        "compare": compare,
    }


def board_html(session_id: str, compare_id: int, below: int | None) -> str | None:
    """The board as a socket's snapshot sends it (out of band); None: no such compare here."""
    compare = Compare.objects.filter(pk=compare_id, session_id=session_id).first()
    if compare is None:
        return None
    return render_to_string(f"{PAGE}#board", {"board": board_context(compare, below), "oob": True})
