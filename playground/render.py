"""HTML fragments for the session page, from the same partials the page view renders."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.utils.html import escape
from django.utils.safestring import mark_safe

from agents.events import (
    ItemDone,
    ItemStarted,
    Notice,
    RunEvent,
    StepDone,
    TextDelta,
    TurnEnded,
    TurnStarted,
)
from agents.models import Item, Step
from playground.markdown import render_markdown

PAGE = "playground/session.html"


def partial(name: str, **context: Any) -> str:
    return render_to_string(f"{PAGE}#{name}", context)


def item_row(item: Item) -> dict[str, Any]:
    html = render_markdown(item.text) if item.kind == "message" else ""
    return {"item": item, "html": mark_safe(html)}


def transcript_rows(items: list[Item], steps: dict[int, Step]) -> list[dict[str, Any]]:
    """Items in order, each step's metrics after the last item it produced."""
    rows: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        rows.append(item_row(item))
        following = items[index + 1].step_id if index + 1 < len(items) else None
        if item.step_id is not None and following != item.step_id and item.step_id in steps:
            rows.append({"step": steps[item.step_id]})
    return rows


def append(html: str) -> str:
    return f'<div hx-swap-oob="beforeend:#transcript">{html}</div>'


def text_delta(key: str, text: str) -> str:
    return f'<template hx-swap-oob="beforeend:#live-{escape(key)}-text">{escape(text)}</template>'


def notice(message: str, level: str = "info", code: str = "") -> str:
    return partial("notice", message=message, level=level, code=code)


def status(busy: bool) -> str:
    return partial("status", busy=busy, oob=True)


def event_html(event: RunEvent) -> str:
    """One runner event as the fragments that bring every open page up to date."""
    match event:
        case TurnStarted(user_item):
            row = item_row(user_item)
            return append(partial("item", **row)) + status(True) + partial("composer", oob=True)
        case ItemStarted(key, kind, label):
            return append(partial("live", key=key, kind=kind, label=label))
        case TextDelta(key, text):
            return text_delta(key, text)
        case ItemDone(key, item):
            return partial("item", oob_target=key, **item_row(item))
        case StepDone(step):
            return append(partial("step", row={"step": step}))
        case TurnEnded(state, message):
            level = "info" if state == "completed" else "error"
            return status(False) + (notice(message, level, state) if message else "")
        case Notice(message):
            return notice(message)
    raise TypeError(f"Unknown run event {event!r}")
