"""What a share link's viewer socket (playground/viewer.py) reads and says: the open frame that
carries the token, the texts of its refusals and endings, and the page's heading.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from django.template.loader import render_to_string

from agents.models import ShareLink
from playground import render

# The page sends the token as soon as the socket opens; a socket that does not is closed.
OPEN_TIMEOUT_SECONDS = 10.0
MAX_OPEN_FRAME_CHARS = 1024  # a token is 43 characters
READ_ONLY = "This is a read-only view of a shared session: it cannot send anything."
REVOKED = "The owner revoked this link: the session is no longer shared with you."
EXPIRED = "This link has expired: the session is no longer shared with you."
NOT_SHARED = "This link does not open a session: it may be mistyped, revoked or expired."
NOT_SHARED_REASON = "This link does not open a session."
LIMITED = "Too many links that open nothing from your address; wait a minute, then try again."
LIMITED_REASON = "Too many links that open nothing; wait a minute, then try again."


def client_address(scope: Any) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def opening(text: str | None) -> tuple[str, bool] | None:
    """The token of an open frame, and whether it counts a view (the page's first socket, not
    a reconnect); None for anything else."""
    if text is None or len(text) > MAX_OPEN_FRAME_CHARS:
        return None
    try:
        frame = json.loads(text)
    except ValueError:
        return None
    if not isinstance(frame, dict) or frame.get("action") != "open":
        return None
    token = frame.get("token")
    if not isinstance(token, str) or not token:
        return None
    return token, frame.get("view") is True


@cache
def read_only_notice() -> str:
    return render.notice(READ_ONLY, "error", "read_only")


def header(link: ShareLink) -> str:
    """The page's heading: the session's title, and its instructions if the link includes them."""
    session = link.session
    instructions = session.instructions if link.include_instructions else ""
    context = {"session": session, "instructions": instructions, "oob": True}
    return render_to_string("playground/viewer.html#header", context)
