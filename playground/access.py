"""Who may see a session: its owner, or the anonymous browser session that created it."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from agents.models import Session


def visible_sessions(user: Any, browser_key: str | None) -> QuerySet[Session]:
    if user is not None and user.is_authenticated:
        return Session.objects.filter(owner=user)
    if not browser_key:
        return Session.objects.none()
    return Session.objects.filter(owner=None, browser_key=browser_key)
