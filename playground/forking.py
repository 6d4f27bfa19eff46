"""Fork a session: a new session holding one branch of another, up to a chosen item.

The fork is a session of its own (its settings, tools and title "Fork of …" can change without
touching the source), linked both ways: it names its source (``Session.forked_from``) and the
source lists its forks. The copied items keep the steps that produced them, response ids
included, so a fork of a ``store=true`` session chains from a stored response by id on its first
run instead of sending its whole context (agents/upstream/delta.py, route "stored").
"""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.http import require_POST

from agents.models import Item, Session, Step, Tool
from agents.run import transcript
from playground import quotas
from playground.access import visible_sessions

FORK_PREFIX = "Fork of "
TITLE_LIMIT = Session._meta.get_field("title").max_length or 200


@require_POST
def session_fork(request: HttpRequest, session_id: str) -> HttpResponse:
    """Fork the session at the item ``target`` of its current branch; htmx goes to the fork."""
    owned = visible_sessions(request.user, request.session.session_key)
    source = get_object_or_404(owned, pk=session_id)
    target = request.POST.get("target", "")
    if not (target.isascii() and target.isdigit() and len(target) < 10):
        return HttpResponse("Which message? The fork names none.", status=422)
    refusal = quotas.new_session_refusal(request, owned)
    if refusal:
        return HttpResponse(refusal, status=429)
    with transaction.atomic():
        fork = copy_branch(source, int(target))
    if fork is None:
        return HttpResponse("That message is not on the branch shown: reload the page.", status=409)
    response = HttpResponse(status=204)
    response["HX-Redirect"] = reverse("session", args=[fork.pk])
    return response


def copy_branch(source: Session, upto: int) -> Session | None:
    """The fork (saved), or None when ``upto`` is not on the source's branch. In a transaction."""
    path = transcript.branch_now(source).path
    if upto not in path:
        return None
    kept = path[: path.index(upto) + 1]
    fork = Session.objects.create(
        owner=source.owner,
        browser_key=source.browser_key,
        title=(FORK_PREFIX + source.title)[:TITLE_LIMIT],
        model=source.model,
        instructions=source.instructions,
        store=source.store,
        transport=source.transport,
        max_steps=source.max_steps,
        forked_from=source,
    )
    tools = list(Tool.objects.filter(session=source))
    for tool in tools:
        tool.pk, tool.session = None, fork
    Tool.objects.bulk_create(tools)
    items = list(Item.objects.filter(session=source, position__in=kept).order_by("position"))
    steps = {step.pk: step for step in Step.objects.filter(pk__in={i.step_id for i in items})}
    copies: dict[int, Step] = {}
    for old_pk, step in steps.items():
        step.pk, step.session = None, fork
        step.save()
        copies[old_pk] = step
    for position, item in enumerate(items):
        copied = copies.get(item.step_id) if item.step_id is not None else None
        item.pk, item.session, item.step = None, fork, copied
        item.position, item.parent = position, position - 1 if position else None
    Item.objects.bulk_create(items)
    return fork
