"""The inspector's pages, inside Django's admin (staff only, the admin's look and navigation).

The list and the detail page render once over HTTP, then keep themselves live over their
sockets (playground/inspector/consumers.py), which render the same partials. Every action is
written to the admin's log (who, when, what), shown on the session's page and in the admin's
"Recent actions".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from agents.live import wire
from agents.live.inspection import live_state
from agents.live.mailbox import ask_runner
from agents.live.store import context_store
from agents.models import Session
from playground import share
from playground.exchange import export_session
from playground.inspector.queries import STATES, Filters, detail_context, session_rows
from playground.views import json_download


@dataclass(frozen=True)
class Action:
    button: str  # what its button says
    done: str  # what the audit log and the page say once it ran


ACTIONS = {
    "rotate": Action("Rotate the upstream socket", "Rotated the upstream socket"),
    "drop": Action("Drop the upstream socket", "Dropped the upstream socket"),
    "stop": Action("End the run", "Ended the run"),
    "close_sockets": Action("Close all browser sockets", "Closed all browser sockets"),
    "revoke_links": Action("Revoke the share links", "Revoked the share links"),
}


def _context(request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
    return {**admin.site.each_context(request), "title": title, **extra}


@require_GET
def session_list(request: HttpRequest) -> HttpResponse:
    filters = Filters.of(request.GET.dict())
    rows = async_to_sync(session_rows)(filters)
    context = _context(request, "Session inspector", rows=rows, filters=filters, states=STATES)
    return render(request, "admin/inspector/list.html", context)


def audit_log(session: Session) -> list[LogEntry]:
    content_type = ContentType.objects.get_for_model(Session)
    entries = LogEntry.objects.filter(content_type=content_type, object_id=str(session.pk))
    return list(entries.select_related("user").order_by("-action_time")[:50])


@require_GET
def session_detail(request: HttpRequest, session_id: str) -> HttpResponse:
    live = async_to_sync(detail_context)(str(session_id))
    if live is None:
        raise Http404("No such session.")
    session = live["detail"].session
    context = _context(
        request, f"Session: {session.title}", actions=ACTIONS, audit=audit_log(session), **live
    )
    return render(request, "admin/inspector/detail.html", context)


@require_POST
async def session_action(request: HttpRequest, session_id: str) -> HttpResponse:
    """An action on the session, audited in the admin's log (async: a runner in this process
    must never be driven from a worker thread)."""
    session = await Session.objects.filter(pk=session_id).afirst()
    action = request.POST.get("action", "")
    if session is None:
        raise Http404("No such session.")
    if action not in ACTIONS:
        messages.error(request, f"Unknown action; expected one of {', '.join(ACTIONS)}.")
        return redirect("inspector-session", session.pk)
    problem = await perform(str(session.pk), action)
    user = await request.auser()
    assert user.pk is not None  # staff_member_required let only staff in
    await sync_to_async(LogEntry.objects.log_actions)(
        user.pk,
        [session],
        CHANGE,
        change_message=f"Inspector: {ACTIONS[action].done} ({problem or 'done'}).",
        single_object=True,
    )
    if problem:
        messages.warning(request, f"{ACTIONS[action].done}: {problem}")
    else:
        messages.success(request, f"{ACTIONS[action].done}.")
    return redirect("inspector-session", session.pk)


async def perform(session_id: str, action: str) -> str:
    """Carry out ``action``; what prevented it, or an empty string."""
    if action == "close_sockets":
        layer = get_channel_layer()
        assert layer is not None
        message: wire.SessionClose = {
            "type": wire.SESSION_CLOSE,
            "reason": "Closed by staff; reconnecting.",
        }
        await layer.group_send(wire.session_group(session_id), dict(message))
        return ""
    if action == "revoke_links":
        count = await share.revoke_links(session_id)
        return "" if count else "there was no active link"
    reply = await ask_runner(session_id, action)
    if reply is None:
        return "no process runs this session right now (no upstream socket, no run)"
    problem = reply.get("problem")
    return str(problem[1]) if problem else ""


@require_GET
def session_export(request: HttpRequest, session_id: str) -> HttpResponse:
    """The session as raw JSON (the export format, plus its live state), for staff."""
    session = Session.objects.filter(pk=session_id).first()
    if session is None:
        raise Http404("No such session.")
    data = async_to_sync(export_session)(session)
    data["live"] = live_state(async_to_sync(context_store().get)(str(session.pk))).as_dict()
    return json_download(data, session)
