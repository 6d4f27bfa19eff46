"""The share panel of a session's page (its owner's links: create, revoke) and the read-only
page every link opens (/s/#<token>); the socket behind that page is playground/viewer.py."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import aget_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from agents.models import Session, ShareLink
from playground import share
from playground.access import visible_sessions
from playground.forms import ShareLinkForm

# On every answer under /s/: the token (in the link's fragment, or the path of an old link) must
# not leak through a Referer or a search index, nor stay in a shared cache.
SHARE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "Cache-Control": "no-store",
}


async def _own_session(request: HttpRequest, session_id: str) -> Session:
    user = await request.auser()
    queryset = visible_sessions(user, request.session.session_key)
    return await aget_object_or_404(queryset, pk=session_id)


def share_context(
    session: Session,
    links: list[ShareLink],
    form: ShareLinkForm | None = None,
    created_url: str = "",
) -> dict[str, Any]:
    """The share panel: the owner's links with their state, the form, a new link's URL once."""
    now = timezone.now()
    rows = [{"link": link, "state": share.state(link, now)} for link in links]
    return {
        "session": session,
        "share_links": rows,
        "share_form": form or ShareLinkForm(),
        "created_url": created_url,
    }


async def _share_panel(
    request: HttpRequest, session: Session, form: ShareLinkForm | None = None, created_url: str = ""
) -> HttpResponse:
    links = [link async for link in ShareLink.objects.filter(session=session)]
    context = share_context(session, links, form, created_url)
    response = render(request, "playground/session.html#share", context)
    response["Cache-Control"] = "no-store"  # it may hold a new link's token
    if form is not None:
        response.status_code = 422
    return response


@require_POST
async def share_create(request: HttpRequest, session_id: str) -> HttpResponse:
    session = await _own_session(request, session_id)
    form = ShareLinkForm(request.POST)
    if not form.is_valid():
        return await _share_panel(request, session, form)
    _link, token = await share.create_link(
        session,
        label=form.cleaned_data["label"],
        include_instructions=form.cleaned_data["include_instructions"],
        expiry=form.cleaned_data["expiry"],
    )
    # The token in the fragment: browsers never send it, so no access log or proxy sees it.
    url = request.build_absolute_uri(reverse("share-view")) + "#" + token
    return await _share_panel(request, session, created_url=url)


@require_POST
async def share_revoke(request: HttpRequest, session_id: str, link_id: int) -> HttpResponse:
    session = await _own_session(request, session_id)
    link = await aget_object_or_404(ShareLink, pk=link_id, session=session)
    await share.revoke(link.pk)
    return await _share_panel(request, session)


def _share_headers(response: HttpResponse) -> HttpResponse:
    for name, value in SHARE_HEADERS.items():
        response[name] = value
    return response


@require_GET
def share_view(request: HttpRequest) -> HttpResponse:
    """The read-only page of a shared session, the same for every link (/s/#<token>): its script
    sends the token from the fragment over the socket, which shows the session and follows it."""
    context = {"socket_path": "/ws/share/"}
    return _share_headers(render(request, "playground/viewer.html", context))


@require_GET
def share_old_link(request: HttpRequest, token: str) -> HttpResponse:
    """A link of the old form, /s/<token>/: its path (the token) is already in the access log
    by now; open it in the fragment form. Nothing is looked up, so the answer is the same for
    every token and no guess is counted (the socket counts them)."""
    response = HttpResponse(status=302)
    response["Location"] = reverse("share-view") + "#" + token
    # Django logs a 4xx with its path; a 302 it does not, but keep the path out of it anyway.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return _share_headers(response)
