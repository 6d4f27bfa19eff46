"""Who may see a session: its owner, or the anonymous browser session that created it.

An anonymous owner is known by its Django session key, a credential (the ``sessionid`` cookie):
the database keeps only its SHA-256 (``Session.browser_key``), so a copy of the database, or a
look at the admin, lets nobody act as the visitor. A key is 32 random characters, so a plain
hash cannot be reversed by guessing (and survives a change of SECRET_KEY, unlike an HMAC).
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.db.models import QuerySet

from agents import statements
from agents.models import Session


def browser_key_hash(session_key: str) -> str:
    """What ``Session.browser_key`` stores for the anonymous browser session ``session_key``."""
    return hashlib.sha256(session_key.encode()).hexdigest()


def visible_sessions(user: Any, session_key: str | None) -> QuerySet[Session]:
    """The sessions of ``user``, or, anonymous, of the browser whose Django session key is
    ``session_key`` (as the cookie holds it)."""
    if user is not None and user.is_authenticated:
        return Session.objects.filter(owner=user)
    if not session_key:
        return Session.objects.none()
    return Session.objects.filter(owner=None, browser_key=browser_key_hash(session_key))


def anonymously_owned(session_id: str, session_key: str | None) -> bool:
    """Whether the anonymous browser whose session key is ``session_key`` owns the session: one
    query, without loading the Django session or its user (a storm of connects pays for each).

    True only where :func:`visible_sessions` for that key's user says so too: a key that created
    anonymous sessions never carries a login, since Django's ``login()`` gives the browser a new
    key (``cycle_key`` or ``flush``) and never accepts a key it did not issue. False says
    nothing: ask :func:`visible_sessions` with the user."""
    if not session_key:
        return False
    return statements.owned_anonymously(session_id, browser_key_hash(session_key))
