"""HTML fragments for the session page, from the same partials the page view renders."""

from __future__ import annotations

from collections import OrderedDict
from functools import cache
from html import escape as quote
from typing import Any

from django.db.models import Q
from django.template.loader import render_to_string
from django.utils.html import escape
from django.utils.safestring import mark_safe

from agents import dbthread
from agents.live.feed import Head
from agents.models import Item, Session, Step
from agents.run import transcript
from agents.run.events import (
    CallResolved,
    CallWaiting,
    Compared,
    ItemAdded,
    ItemDone,
    ItemStarted,
    Notice,
    Rebranched,
    Retitled,
    RunEvent,
    StepDone,
    StepUpdated,
    TextDelta,
    TurnEnded,
    TurnStarted,
)
from agents.scalar_text import scrub, valid_text
from playground import fragments, sidebar
from playground import waterfall as waterfalls
from playground.markdown import render_markdown

PAGE = "playground/session.html"
TRANSCRIPTS_KEPT = 64  # durable transcripts kept for reconnects (see durable_transcript)
_transcripts: OrderedDict[tuple[str, str, int, int | None, int, bool], str] = OrderedDict()
_empty_transcript: str | None = None  # the transcript with no rows (see durable_transcript)


def partial(name: str, **context: Any) -> str:
    return render_to_string(f"{PAGE}#{name}", context)


def item_row(item: Item, siblings: tuple[int, ...] = ()) -> dict[str, Any]:
    """An item's row; ``siblings`` (itself among them) when it has any: its branch switcher."""
    html = render_markdown(item.text) if item.kind == "message" else ""
    row: dict[str, Any] = {"item": item, "html": mark_safe(html)}
    if len(siblings) > 1:
        index = siblings.index(item.position)
        row["fork"] = {
            "index": index + 1,
            "count": len(siblings),
            "previous": siblings[index - 1] if index > 0 else None,
            "next": siblings[index + 1] if index + 1 < len(siblings) else None,
        }
    return row


def transcript_rows(
    items: list[Item],
    steps: dict[int, Step],
    open_run: int | None = None,
    forks: dict[int, tuple[int, ...]] | None = None,
) -> list[dict[str, Any]]:
    """Items in order, each step's metrics after the last item it produced, and each finished
    run's waterfall after the run (``open_run`` is still going: its waterfall comes live), every
    one on the scale of the session's longest run (playground/waterfall.py). ``items`` are a
    branch (agents/run/tree.py) and ``steps`` its steps (:func:`branch_records`)."""
    forks = forks or {}
    runs: dict[int, list[Step]] = {}
    for step in steps.values():
        if step.turn_position is not None and step.turn_position != open_run:
            runs.setdefault(step.turn_position, []).append(step)
    session_id = next((str(s.session_id) for s in steps.values() if s.session_id), None)
    charts = waterfalls.session_geometries(session_id, runs)
    rows: list[dict[str, Any]] = []
    run: int | None = None
    for index, item in enumerate(items):
        if item.role == "user" and item.kind == "message":
            rows.extend(_waterfall_row(charts, run))
            run = item.position
        rows.append(item_row(item, forks.get(item.position, ())))
        following = items[index + 1].step_id if index + 1 < len(items) else None
        if item.step_id is not None and following != item.step_id and item.step_id in steps:
            rows.append({"step": steps[item.step_id]})
    rows.extend(_waterfall_row(charts, run))
    return rows


def _waterfall_row(charts: dict[int, dict[str, Any]], run: int | None) -> list[dict[str, Any]]:
    chart = charts.get(run) if run is not None else None
    return [{"waterfall": chart}] if chart else []


def waterfall(steps: list[Step] | tuple[Step, ...]) -> dict[str, Any]:
    """Geometry of a run's waterfall on its own scale (the inspector's latest run)."""
    return waterfalls.geometry(steps)


async def durable_rows(session_id: str, below: int | None, head: Head | None = None) -> list[Any]:
    """The transcript rows of the session's branch in the database, below position ``below``
    (all: None); ``head`` says which run is open."""
    if below is not None and below <= 0:
        return []  # positions start at 0: nothing is below (a new session's first epoch)
    open_run = head.turn if head is not None and head.running else None
    start = head.start if head is not None and head.running else None
    # One trip to the database thread: every snapshot pays for each trip.
    items, steps, forks = await dbthread.call(branch_records, session_id, below, open_run, start)
    return transcript_rows(items, steps, open_run, forks)


def branch_records(
    session_id: str,
    below: int | None = None,
    open_run: int | None = None,
    start: int | None = None,
) -> tuple[list[Item], dict[int, Step], dict[int, tuple[int, ...]]]:
    """The session's branch (synchronous, for the database thread): its items below ``below``,
    the steps and each forked item's siblings. While a regenerate of ``open_run`` runs, the
    replies it replaces (between the message and the run's ``start``) are not on it."""
    session = Session.objects.only("head").get(pk=session_id)
    branch = transcript.branch_now(session)
    path = [
        position
        for position in branch.path
        if (below is None or position < below)
        and not (open_run is not None and start is not None and open_run < position < start)
    ]
    items = list(Item.objects.filter(session_id=session_id, position__in=path).order_by("position"))
    # A step is on the branch by what it produced; one that produced nothing (an error before
    # any output) by the turn it ran for.
    made = Item.objects.filter(session_id=session_id, step__isnull=False).values("step")
    found = Step.objects.filter(session_id=session_id).filter(
        Q(pk__in={item.step_id for item in items if item.step_id is not None})
        | (Q(turn_position__in=path) & ~Q(pk__in=made))
    )
    return items, {step.pk: step for step in found}, branch.forks


async def durable_transcript(session_id: str, head: Head | None, read_only: bool = False) -> str:
    """A snapshot's transcript: the items in the database below the log's base, as HTML (all
    of them when the log is gone); a read-only one (a viewer's) has no edit or branch controls.

    During a runner's epoch nothing below its base changes, and tabs reconnecting during a run
    ask for the same transcript again and again: it is kept, by epoch, base and open run.
    """
    if head is None:
        rows = await durable_rows(session_id, None)
        return partial("transcript", rows=rows, oob=True, read_only=read_only)
    open_run = head.turn if head.running else None
    if head.base <= 0:  # nothing below the base: the same empty transcript for every session
        global _empty_transcript
        if _empty_transcript is None:
            _empty_transcript = partial("transcript", rows=[], oob=True)  # no controls in it
        return _empty_transcript
    key = (session_id, head.epoch, head.base, open_run, head.rev, read_only)
    html = _transcripts.get(key)
    if html is None:
        rows = await durable_rows(session_id, head.base, head)
        html = partial("transcript", rows=rows, oob=True, read_only=read_only)
        _transcripts[key] = html
        while len(_transcripts) > TRANSCRIPTS_KEPT:
            _transcripts.popitem(last=False)
    else:
        _transcripts.move_to_end(key)
    return html


def snapshot(transcript: str, events: list[RunEvent], busy: bool, read_only: bool = False) -> str:
    """Bring a (re)connected page to the server's state: the durable transcript replaces the
    page's, then the in-flight log replays on top of it."""
    replay = "".join(event_html(event, read_only) for event in events)
    waiting = '<div id="waiting" hx-swap-oob="true"></div>'
    return transcript + waiting + status(busy, read_only) + replay


def append(html: str, column: int | None = None) -> str:
    """Add to the end of the transcript, or of a compare's column (templates/.../compare.html)."""
    target = "#transcript" if column is None else f"#column-{column}"
    return f'<div hx-swap-oob="beforeend:{target}">{html}</div>'


def text_delta(key: str, text: str) -> str:
    # ``html.escape``, as Django's ``escape`` is, without its lazy-string wrapper: per frame.
    text = text if valid_text(text) else scrub(text)
    return f'<template hx-swap-oob="beforeend:#live-{quote(key)}-text">{quote(text)}</template>'


def notice(message: str, level: str = "info", code: str = "") -> str:
    return partial("notice", message=message, level=level, code=code)


@cache  # its only context is its arguments: four renderings, one each per process
def status(busy: bool, read_only: bool = False) -> str:
    return partial("status", busy=busy, read_only=read_only, oob=True)


def event_html(event: RunEvent, read_only: bool = False) -> str:
    """One runner event as the fragments that bring every open page up to date. A read-only
    page (a share link's viewer) gets no controls: no stop button, composer or answer forms."""
    match event:
        case TurnStarted(user_item):
            row = item_row(user_item)
            composer = "" if read_only else partial("composer", oob=True)
            item = partial("item", read_only=read_only, **row)
            return append(item) + status(True, read_only) + composer
        case ItemStarted(key, kind, label, column):
            return append(fragments.live_item(key, kind, label), column)
        case TextDelta(key, text):
            return text_delta(key, text)
        case ItemDone(key, item):
            return partial("item", oob_target=key, read_only=read_only, **item_row(item))
        case ItemAdded(item, column):
            return append(partial("item", read_only=read_only, **item_row(item)), column)
        case CallWaiting(call_id, name, arguments, kind):
            call = {"call_id": call_id, "name": name, "arguments": arguments, "kind": kind}
            waiting = partial("waiting", call=call, read_only=read_only)
            return f'<div hx-swap-oob="beforeend:#waiting">{waiting}</div>'
        case CallResolved(call_id):
            return f'<div id="call-{escape(call_id)}" hx-swap-oob="delete"></div>'
        case StepDone(step, column):
            return append(fragments.step_line(step), column)
        case StepUpdated(step):
            return fragments.step_line(step, oob=True)
        case TurnEnded(state, message, steps):
            level = "info" if state == "completed" else "error"
            # The run's chart on the session's scale, and the earlier ones again if it is the
            # new longest (they replace theirs on the page: playground/waterfall.py).
            chart = "".join(
                partial("waterfall", row={"waterfall": found})
                if found["oob"]
                else append(partial("waterfall", row={"waterfall": found}))
                for found in waterfalls.session_runs.finished(steps)
            )
            ended = status(False, read_only)
            return chart + ended + (notice(message, level, state) if message else "")
        case Notice(message):
            return notice(message)
        case Rebranched() | Compared():
            return ""  # a live tab redraws from the database (agents/live/subscription.py)
        case Retitled(session_id, title, pinned):
            if read_only:  # a viewer's page has its own heading, and no sidebar
                return render_to_string(
                    "playground/viewer.html#title", {"title": title, "oob": True}
                )
            return sidebar.retitled(session_id, title, pinned)
    raise TypeError(f"Unknown run event {event!r}")


def viewer_event_html(event: RunEvent) -> str:
    """:func:`event_html` for a read-only viewer socket."""
    return event_html(event, read_only=True)
