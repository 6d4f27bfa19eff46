from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import aget_object_or_404, get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST

from agents import dbthread
from agents.live import wire
from agents.live.store import context_store
from agents.models import Session, ShareLink, Tool
from agents.tools.starter import starter_tools
from playground import exchange, model_picker, quotas, sidebar
from playground.access import browser_key_hash, visible_sessions
from playground.forms import ImportForm, SessionSettingsForm, ToolForm
from playground.render import branch_records, transcript_rows
from playground.share_views import share_context
from playground.tool_presets import PRESETS
from simulator.model import SCENARIOS


def _browser_key(request: HttpRequest) -> str:
    """What a new session of this anonymous visitor stores: the hash of its session key
    (the key is created on first use)."""
    if request.session.session_key is None:
        request.session.save()
    return browser_key_hash(str(request.session.session_key))


def _announce(session: Session, text: str) -> None:
    """Tell the session's open tabs (and its runner, which warms the upstream again)."""
    layer = get_channel_layer()
    if layer is not None:
        message: wire.SessionChanged = {"type": wire.SESSION_CHANGED, "text": text}
        async_to_sync(layer.group_send)(wire.session_group(str(session.pk)), dict(message))


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return _home(request, ImportForm())


def _home(
    request: HttpRequest,
    import_form: ImportForm,
    import_error: str = "",
    status: int = 200,
    new_error: str = "",
) -> HttpResponse:
    context = {
        "new_error": new_error,
        "sessions": visible_sessions(request.user, request.session.session_key)[:50],
        "embedded": settings.UPSTREAM_IS_EMBEDDED,
        "upstream": settings.UPSTREAM_BASE_URL,
        "scenarios": [usage.split(" - ", 1) for usage in SCENARIOS.values()],
        "import_form": import_form,
        "import_error": import_error,
    }
    return render(request, "home.html", context, status=status)


@require_POST
def session_import(request: HttpRequest) -> HttpResponse:
    """A session file (see ``exchange``) becomes a new session of this browser or user."""
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _home(request, form, "Choose a session file (JSON) to import.", 400)
    upload = form.cleaned_data["file"]
    if upload.size > exchange.MAX_BYTES:
        limit = exchange.MAX_BYTES // (1024 * 1024)
        return _home(request, form, f"The file is larger than {limit} MiB.", 400)
    try:
        imported = exchange.parse(upload.read())
    except exchange.ExchangeError as error:
        return _home(request, form, error.message, error.status)
    problem = quotas.imported_problem(imported.session, imported.tools)
    if problem:
        return _home(request, form, problem, 422)
    refusal = quotas.new_session_refusal(request, _owned(request))
    if refusal:
        return _home(request, form, refusal, 429)
    owner = request.user if request.user.is_authenticated else None
    session = exchange.save(imported, owner, "" if owner else _browser_key(request))
    return redirect("session", session.pk)


@require_GET
async def session_export(request: HttpRequest, session_id: str) -> HttpResponse:
    user = await request.auser()
    queryset = visible_sessions(user, request.session.session_key)
    session = await aget_object_or_404(queryset, pk=session_id)
    return json_download(await exchange.export_session(session), session)


def json_download(data: dict[str, Any], session: Session) -> JsonResponse:
    """A session's JSON as the file ``session-<id>.json`` (owners' and staff's exports)."""
    response = JsonResponse(data, json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="session-{session.pk}.json"'
    return response


def _owned(request: HttpRequest) -> QuerySet[Session]:
    return visible_sessions(request.user, request.session.session_key)


@require_POST
def session_new(request: HttpRequest) -> HttpResponse:
    """A new session with the built-in tools on (``agents/tools/starter.py``), so the home
    page's scenarios call tools at once; ``tools=none`` (a script's, the benchmark's) leaves it
    without."""
    refusal = quotas.new_session_refusal(request, _owned(request))
    if refusal:
        return _home(request, ImportForm(), status=429, new_error=refusal)
    session = Session(model=settings.UPSTREAM_MODEL)
    if request.user.is_authenticated:
        session.owner = request.user
    else:
        session.browser_key = _browser_key(request)
    with transaction.atomic():
        session.save()
        if request.POST.get("tools") != "none":
            Tool.objects.bulk_create(starter_tools(session, settings.QUOTA_TOOLS_PER_SESSION))
    return redirect("session", session.pk)


def suggestions() -> list[str]:
    """A new session's first messages, one click away: the simulator's scenarios where it is the
    upstream (a new session has the built-in tools they call), plain questions otherwise."""
    plain = ["calculate 17*23+4", "What time is it in Tokyo?"]
    if not settings.UPSTREAM_IS_EMBEDDED:
        return plain
    return ["/research 3 tide tables at Brest", *plain, "/parallel 3", "/chat 120"]


@require_GET
async def session_detail(request: HttpRequest, session_id: str) -> HttpResponse:
    user = await request.auser()
    key = request.session.session_key
    visible = visible_sessions(user, key).select_related("forked_from")
    session = await visible.filter(pk=session_id).afirst()
    if session is None:  # the page itself, not Django's 404 (with DEBUG: its URL patterns)
        return render(request, "playground/not_found.html", status=404)
    listed = [found async for found in sidebar.listed(visible_sessions(user, key))]
    items, steps, forks = await dbthread.call(branch_records, str(session.pk))
    hot = await context_store().get(str(session.pk))
    tools = [tool async for tool in Tool.objects.filter(session=session)]
    links = [link async for link in ShareLink.objects.filter(session=session)]
    context = {
        **tools_context(session, tools),
        **share_context(session, links),
        "session": session,
        "rows": transcript_rows(items, steps, forks=forks),
        "form": SessionSettingsForm(instance=session),
        "busy": bool(hot.get("running")),
        **sidebar.context(listed, session.pk),
        "model_names": await model_picker.model_names(),
        "suggestions": [] if items else suggestions(),
        "forks": [f async for f in visible_sessions(user, key).filter(forked_from=session)],
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
    instructions = {**context, "oob": True}
    response.write(render_to_string("playground/session.html#instructions", instructions))
    if not saved:
        response.status_code = 422  # swapped all the same (templates/base.html): errors inline
        return response
    # A rename shows at once: the heading, the tab's title and the sidebar, out of band.
    response.write(sidebar.renamed(session, queryset))
    return response


def tools_context(
    session: Session, tools: list[Tool], bound: ToolForm | None = None
) -> dict[str, Any]:
    """The tools panel: each tool's row and an "add" form (``bound`` shows its errors). A tool's
    edit form comes when its row is opened (:func:`tool_form`): rendering a dozen fields per tool
    was most of a session page's time, for forms seldom opened."""

    def edit_form(tool: Tool) -> ToolForm | None:
        return bound if bound is not None and bound.instance.pk == tool.pk else None

    new = bound if bound is not None and bound.instance.pk is None else None
    return {
        "session": session,
        # The saved tool beside its form: a rejected edit must not relabel the tool.
        "tool_forms": [(tool, edit_form(tool)) for tool in tools],
        "new_tool": new or ToolForm(session=session, prefix="new"),
        "presets": PRESETS,
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


@require_GET
def tool_form(request: HttpRequest, session_id: str, tool_id: int) -> HttpResponse:
    """A tool's edit form, for its row in the tools panel when opened."""
    queryset = visible_sessions(request.user, request.session.session_key)
    session = get_object_or_404(queryset, pk=session_id)
    tool = get_object_or_404(Tool, pk=tool_id, session=session)
    form = ToolForm(instance=tool, session=session, prefix=f"t{tool.pk}")
    context = {"session": session, "tool": tool, "form": form}
    return render(request, "playground/session.html#tool_form", context)


@require_POST
def tool_delete(request: HttpRequest, session_id: str, tool_id: int) -> HttpResponse:
    queryset = visible_sessions(request.user, request.session.session_key)
    session = get_object_or_404(queryset, pk=session_id)
    get_object_or_404(Tool, pk=tool_id, session=session).delete()
    _announce(session, "Tool deleted: the next turn goes without it.")
    return _tools_panel(request, session)
