"""The owner's tab on a session: it follows the session (playground/feed_socket.py) and sends
its commands (send, stop, answers, staff actions) to the session's runner, wherever it runs.
"""

from __future__ import annotations

from typing import Any

from agents import dbthread
from agents.live import admission, wire
from agents.live.feed import Snapshot
from agents.models import Compare
from playground import quotas, render
from playground.access import anonymously_owned, visible_sessions
from playground.compare_views import board_html
from playground.feed_socket import FeedConsumer
from playground.protocol import (
    CLOSE_FORBIDDEN,
    CLOSE_NOT_FOUND,
    RUN_ACTIONS,
    FrameError,
    parse_frame,
)
from playground.socket_auth import resolve_user


def may_see(scope: Any, session_id: str) -> bool:
    """Whether the socket's user or browser may see the session: one trip to the database
    thread for the user and the session both (a storm of connects queues on that thread), and
    for the usual socket, an anonymous owner's, one query."""
    browser = scope.get("session")
    key = browser.session_key if browser else None
    if anonymously_owned(session_id, key):
        return True
    return visible_sessions(resolve_user(scope), key).filter(pk=session_id).exists()


class SessionConsumer(FeedConsumer):
    """The owner's tab: follows the session and sends its commands (send, stop, answers)."""

    compare_id: int | None = None  # a compare page's socket shows that compare's board

    async def connect(self) -> None:
        session_id = str(self.scope["url_route"]["kwargs"]["session_id"])
        # Accept, then close with 4403: a close before accept is an HTTP 403 that browsers
        # report as 1006, which htmx retries forever. Accepting first also keeps the handshake
        # quick under a storm: the socket then waits its turn for a connect slot.
        await self.accept()
        async with admission.connect_slot():
            refusal = await dbthread.call(self.refusal, session_id)
            if refusal is None:
                await self.show_session(session_id)
                return
        await self.close(code=refusal[0], reason=refusal[1])

    def refusal(self, session_id: str) -> tuple[int, str] | None:
        """Why this socket may not follow the session (a close code and reason), or None."""
        if may_see(self.scope, session_id):
            return None
        return CLOSE_FORBIDDEN, "This session is not yours."

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.outbox is None or self.subscription is None:
            return
        try:
            action = parse_frame(text_data, bytes_data)
        except FrameError as error:
            self.outbox.put(render.notice(error.message, "error", error.code))
            return
        if action.name == "ack":
            self.outbox.acknowledge(action.received)
            return
        if action.name in RUN_ACTIONS:
            refusal = await quotas.run_refusal(quotas.socket_address(self.scope))
            if refusal:
                self.refused(("rate_limited", refusal))
                return
        await self.subscription.command(action.name, action.message, action.target)

    async def render(self, snap: Snapshot) -> str:
        if self.compare_id is None:
            return await super().render(snap)
        # A compare's page: its board (columns, results) in place of the transcript.
        below = snap.head.base if snap.head is not None else None
        board = await dbthread.call(board_html, self.session_id, self.compare_id, below)
        running = snap.head.running if snap.head is not None else False
        return render.snapshot(board or "", [event for _, event in snap.events], running)

    async def runner_reply(self, message: wire.RunnerReply) -> None:
        """Channel message: another process's runner answered a command."""
        if self.subscription is not None:
            self.subscription.reply(message)


class CompareConsumer(SessionConsumer):
    """A compare page's socket: the session's feed, its board in place of the transcript."""

    async def connect(self) -> None:
        self.compare_id = int(self.scope["url_route"]["kwargs"]["compare_id"])
        await super().connect()

    def refusal(self, session_id: str) -> tuple[int, str] | None:
        # The session first: whether a compare exists is told only to who may see it.
        refused = super().refusal(session_id)
        found = Compare.objects.filter(pk=self.compare_id or 0, session_id=session_id)
        if refused is None and not found.exists():
            return CLOSE_NOT_FOUND, "This session has no such compare."
        return refused
