"""A share link's viewer socket: the session's transcript and its runs, live and read-only.

Authorised by the link's token in ``connect``: an unknown, revoked or expired link is refused
for good (accept, then close 4404; a close before accept reaches the browser as 1006, which
htmx retries forever), and so is a client address over the guessing limit (4429). The socket
joins its link's group, so revoking the link closes it on any process, and closes itself when
the link expires. Every frame but an ack is refused: a viewer changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Any

from django.utils import timezone

from agents.models import ShareLink
from playground import render, share
from playground.consumers import FeedConsumer
from playground.protocol import ack_count

log = logging.getLogger(__name__)

CLOSE_NOT_FOUND = 4404
CLOSE_GONE = 4410  # the link was revoked or expired while the socket was open
CLOSE_LIMITED = 4429
READ_ONLY = "This is a read-only view of a shared session: it cannot send anything."
REVOKED = "The owner revoked this link: the session is no longer shared with you."
EXPIRED = "This link has expired: the session is no longer shared with you."


def client_address(scope: Any) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class ViewerConsumer(FeedConsumer):
    read_only = True
    link_id: int | None = None
    _expiry: asyncio.TimerHandle | None = None
    _ending: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        token = str(self.scope["url_route"]["kwargs"]["token"])
        await self.accept()
        try:
            link = await share.lookup(token, client_address(self.scope))
        except share.GuessingLimited:
            reason = "Too many links that open nothing; wait a minute, then try again."
            await self.close(code=CLOSE_LIMITED, reason=reason)
            return
        if link is None:
            await self.close(code=CLOSE_NOT_FOUND, reason="This link does not open a session.")
            return
        self.link_id = link.pk
        await self.channel_layer.group_add(share.group_name(link.pk), self.channel_name)
        # Revoked between the lookup and joining the group: its revocation message was missed.
        if not await ShareLink.objects.filter(share.active(), pk=link.pk).aexists():
            await self._end(REVOKED, "revoked")
            return
        if link.expires is not None:
            delay = (link.expires - timezone.now()).total_seconds()
            self._expiry = asyncio.get_running_loop().call_later(delay, self._expired)
        await share.record_use(link)
        await self.follow(str(link.session_id))

    async def _leave(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        link_id, self.link_id = self.link_id, None
        if link_id is not None:
            with suppress(Exception):  # the layer may be what failed
                await self.channel_layer.group_discard(share.group_name(link_id), self.channel_name)
        await super()._leave()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.outbox is None:
            return
        received = ack_count(text_data, bytes_data)
        if received is not None:  # flow control, not input: the page's acks keep it streaming
            self.outbox.acknowledge(received)
            return
        log.warning("A viewer of session %s sent a frame; refused: read-only", self.session_id)
        self.outbox.put(render.notice(READ_ONLY, "error", "read_only"))

    async def share_revoked(self, message: dict[str, Any]) -> None:
        """Group message: the owner revoked the link."""
        await self._end(REVOKED, "revoked")

    def _expired(self) -> None:
        self._ending = asyncio.create_task(self._end(EXPIRED, "expired"))

    async def _end(self, text: str, code: str) -> None:
        """Tell the page why, then close for good (htmx does not reconnect after a 4xxx)."""
        await self._leave()  # stops the outbox first: nothing can follow the notice
        with suppress(Exception):  # the page may be gone already
            await self.send(text_data=render.notice(text, "error", code))
            await self.close(code=CLOSE_GONE, reason=text)
