from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import aget_object_or_404, get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from agents.models import Item, Session, Step, Tool
from agents.simulator.model import SCENARIOS
from agents.store import context_store
from playground.access import visible_sessions
from playground.forms import SessionSettingsForm, ToolForm
from playground.render import transcript_rows


def _browser_key(request: HttpRequest) -> str:
    """The anonymous visitor's session key, created on first use."""
    if request.session.session_key is None:
        request.session.save()
    return str(request.session.session_key)


def _announce(session: Session, text: str) -> None:
    """Tell the session's open tabs (and its runner, which warms the upstream again)."""
    layer = get_channel_layer()
    if layer is not None:
        message = {"type": "session.changed", "text": text}
        async_to_sync(layer.group_send)(f"session.{session.pk}", message)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    context = {
        "sessions": visible_sessions(request.user, request.session.session_key)[:50],
        "embedded": settings.UPSTREAM_IS_EMBEDDED,
        "base_url": request.build_absolute_uri("/v1"),
        "upstream": settings.UPSTREAM_BASE_URL,
        "scenarios": SCENARIOS,
    }
    return render(request, "home.html", context)


@require_POST
def session_new(request: HttpRequest) -> HttpResponse:
    session = Session(model=settings.UPSTREAM_MODEL)
    if request.user.is_authenticated:
        session.owner = request.user
    else:
        session.browser_key = _browser_key(request)
    session.save()
    return redirect("session", session.pk)


@require_GET
async def session_detail(request: HttpRequest, session_id: str) -> HttpResponse:
    user = await request.auser()
    queryset = visible_sessions(user, request.session.session_key)
    session = await aget_object_or_404(queryset, pk=session_id)
    items = [item async for item in Item.objects.filter(session=session).order_by("position")]
    steps = {step.pk: step async for step in Step.objects.filter(session=session)}
    hot = await context_store().get(str(session.pk))
    tools = [tool async for tool in Tool.objects.filter(session=session)]
    context = {
        **tools_context(session, tools),
        "session": session,
        "rows": transcript_rows(items, steps),
        "form": SessionSettingsForm(instance=session),
        "busy": bool(hot.get("running")),
    }
    return render(request, "playground/session.html", context)


@require_POST
def session_settings(request: HttpRequest, session_id: str) -> HttpResponse:
    queryset = visible_sessions(request.user, request.session.session_key)
    session = get_object_or_404(queryset, pk=session_id)
    form = SessionSettingsForm(request.POST, instance=session)
    saved = form.is_valid()
    if saved:
        form.save()
        _announce(session, "Settings saved: the next turn uses them.")
    context = {"session": session, "form": form, "saved": saved}
    response = render(request, "playground/session.html#settings", context)
    if not saved:
        response.status_code = 422
    return response


def tools_context(
    session: Session, tools: list[Tool], bound: ToolForm | None = None
) -> dict[str, Any]:
    """The tools panel: an edit form per tool and an "add" form (``bound`` shows its errors)."""

    def edit_form(tool: Tool) -> ToolForm:
        if bound is not None and bound.instance.pk == tool.pk:
            return bound
        return ToolForm(instance=tool, session=session, prefix=f"t{tool.pk}")

    new = bound if bound is not None and bound.instance.pk is None else None
    return {
        "session": session,
        # The saved tool beside its form: a rejected edit must not relabel the tool.
        "tool_forms": [(tool, edit_form(tool)) for tool in tools],
        "new_tool": new or ToolForm(session=session, prefix="new"),
    }


def _tools_panel(
    request: HttpRequest, session: Session, bound: ToolForm | None = None
) -> HttpResponse:
    context = tools_context(session, list(Tool.objects.filter(session=session)), bound)
    response = render(request, "playground/session.html#tools", context)
    if bound is not None:
        response.status_code = 422
    return response


@require_POST
def tool_save(request: HttpRequest, session_id: str, tool_id: int | None = None) -> HttpResponse:
    """Create or update a tool; the panel comes back with the result (errors inline)."""
    queryset = visible_sessions(request.user, request.session.session_key)
    session = get_object_or_404(queryset, pk=session_id)
    tool = get_object_or_404(Tool, pk=tool_id, session=session) if tool_id else None
    prefix = f"t{tool.pk}" if tool else "new"
    form = ToolForm(request.POST, instance=tool, session=session, prefix=prefix)
    if not form.is_valid():
        return _tools_panel(request, session, form)
    form.save()
    _announce(session, "Tools saved: the next turn uses them.")
    return _tools_panel(request, session)


@require_POST
def tool_delete(request: HttpRequest, session_id: str, tool_id: int) -> HttpResponse:
    queryset = visible_sessions(request.user, request.session.session_key)
    session = get_object_or_404(queryset, pk=session_id)
    get_object_or_404(Tool, pk=tool_id, session=session).delete()
    _announce(session, "Tool deleted: the next turn goes without it.")
    return _tools_panel(request, session)
