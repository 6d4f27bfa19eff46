"""The sessions sidebar: the visitor's sessions, searched, pinned, renamed and deleted in place
(htmx). Pinned sessions come first, then the most recently updated.

Every view answers with the list itself (``playground/sidebar.html#list``); renaming the session
the page shows also renames its heading, and deleting it sends the page home. A session its
first message titled tells its tabs with :func:`retitled` (over their socket).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from asgiref.sync import async_to_sync
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from agents.live.store import context_store
from agents.models import Session
from playground.access import visible_sessions
from playground.forms import SessionSettingsForm

LISTED = 100  # the most recent sessions the sidebar lists (a search looks through them all)
MAX_QUERY_CHARS = 200
TITLE_CHARS = Session._meta.get_field("title").max_length or 200
RUNNING = "Stop its run first: a running session cannot be deleted."


def listed(sessions: QuerySet[Session], query: str = "") -> QuerySet[Session]:
    if query:
        sessions = sessions.filter(title__icontains=query)
    ordered = sessions.order_by("-pinned", "-updated")
    return ordered.only("id", "title", "pinned")[:LISTED]


def context(sessions: list[Session], current: UUID | None, query: str = "") -> dict[str, Any]:
    return {"sessions": sessions, "current": current, "q": query}


def _owned(request: HttpRequest) -> QuerySet[Session]:
    return visible_sessions(request.user, request.session.session_key)


def _field(request: HttpRequest, name: str) -> str:
    return str(request.POST.get(name) or request.GET.get(name) or "")


def _current(request: HttpRequest) -> UUID | None:
    """The session the page shows (the page sends it), if any."""
    try:
        return UUID(_field(request, "current"))
    except ValueError:
        return None


def _list(request: HttpRequest, error: str = "", status: int = 200) -> HttpResponse:
    query = _field(request, "q").strip()[:MAX_QUERY_CHARS]
    found = list(listed(_owned(request), query))
    values = {**context(found, _current(request), query), "error": error}
    return render(request, "playground/sidebar.html#list", values, status=status)


@require_GET
def session_search(request: HttpRequest) -> HttpResponse:
    return _list(request)


@require_POST
def session_rename(request: HttpRequest, session_id: UUID) -> HttpResponse:
    session = get_object_or_404(_owned(request), pk=session_id)
    title = " ".join((request.headers.get("HX-Prompt") or "").split())[:TITLE_CHARS]
    if not title:
        return _list(request)  # the prompt was cancelled or left empty: nothing changes
    session.title = title
    session.save(update_fields=["title", "updated"])
    response = _list(request)
    if _current(request) == session.pk:
        response.write(heading(session))
    return response


@require_POST
def session_pin(request: HttpRequest, session_id: UUID) -> HttpResponse:
    """Pin (``pinned=1``) or unpin (``pinned=0``) a session: it moves, its recency does not
    change (a queryset update leaves ``updated`` alone)."""
    pinned = _field(request, "pinned") == "1"
    if not _owned(request).filter(pk=session_id).update(pinned=pinned):
        raise Http404("No such session.")
    return _list(request)


def heading(session: Session) -> str:
    """The renamed session's heading and the tab's title (htmx reads a ``<title>`` in any
    response), out of band."""
    return render_to_string("playground/session.html#heading", {"session": session, "oob": True})


def renamed(session: Session, owned: QuerySet[Session]) -> str:
    """After the settings renamed the session a page shows: its heading, and the sidebar's list
    out of band too."""
    values = {**context(list(listed(owned)), session.pk), "oob": True}
    return heading(session) + render_to_string("playground/sidebar.html#list", values)


def retitled(session_id: str, title: str, pinned: bool) -> str:
    """For the tabs of a session its first message titled: the heading and the tab's title, the
    settings form's title field (so that a save does not put the default back) and the
    session's row in the sidebar, each out of band. The same for every tab: no query. (The
    heading's ``<title>`` is for an HTTP response; over the socket, ``#tab_title`` sets it.)"""
    session = Session(pk=UUID(session_id), title=title, pinned=pinned)
    field = SessionSettingsForm(instance=session)["title"]
    row = {"listed": session, "current": session.pk, "row_oob": True}
    return (
        heading(session)
        + render_to_string("playground/sidebar.html#tab_title", {"session": session})
        + field.as_widget(attrs={"hx-swap-oob": "true"})
        + render_to_string("playground/sidebar.html#row", row)
    )


@require_POST
def session_delete(request: HttpRequest, session_id: UUID) -> HttpResponse:
    session = get_object_or_404(_owned(request), pk=session_id)
    hot = async_to_sync(context_store().get)(str(session.pk))
    if hot.get("running"):
        return _list(request, RUNNING, status=409)
    session.delete()
    if _current(request) == session_id:
        return HttpResponseClientRedirect(reverse("home"))
    return _list(request)
