"""A share link's viewer socket: the session's transcript and its runs, live and read-only.

The socket's path is ``/ws/share/`` for every link, so no access log (daphne's, a proxy's) ever
holds a token: the page (static/share.js) takes the token from the link's fragment and sends it
as the socket's first frame, ``{"action": "open", "token": ..., "view": true|false}``. An
unknown, revoked or expired link is refused for good (a notice, then close 4404; a close before
accept reaches the browser as 1006, which htmx retries forever), and so is a client address over
the guessing limit (4429), a first frame that is not an open frame, or none within
``OPEN_TIMEOUT_SECONDS``. The socket joins its link's group, so revoking the link closes it on
any process, and closes itself when the link expires. Every later frame but an ack is refused:
a viewer changes nothing, and the page is told so at most once per
``SHARE_READ_ONLY_NOTICE_SECONDS``, so a flood of frames costs a parse each and fills no log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress
from functools import cache
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone

from agents.live.wire import share_group
from agents.models import ShareLink
from playground import render, share
from playground.feed_socket import FeedConsumer
from playground.protocol import CLOSE_GONE, CLOSE_LIMITED, CLOSE_NOT_FOUND, ack_count
from playground.viewing import (
    EXPIRED,
    LIMITED,
    LIMITED_REASON,
    NOT_SHARED,
    NOT_SHARED_REASON,
    OPEN_TIMEOUT_SECONDS,
    REVOKED,
    client_address,
    header,
    opening,
    read_only_notice,
)

log = logging.getLogger(__name__)


@cache
def gone_page() -> str:
    """The viewer page's content, out of band: this link does not open a session."""
    gone = render_to_string("playground/revoked.html#gone")
    return f'<div hx-swap-oob="innerHTML:main">{gone}</div>'


class ViewerConsumer(FeedConsumer):
    read_only = True
    link_id: int | None = None
    _opened = False  # the first frame came (whatever it opened)
    _open_timer: asyncio.TimerHandle | None = None
    _expiry: asyncio.TimerHandle | None = None
    _ending: asyncio.Task[None] | None = None
    _told_read_only = float("-inf")  # when the page was last told (monotonic clock)

    async def connect(self) -> None:
        await self.accept()
        loop = asyncio.get_running_loop()
        self._open_timer = loop.call_later(OPEN_TIMEOUT_SECONDS, self._open_timed_out)

    async def _open(self, text: str | None) -> None:
        """Authorise by the first frame's token, then follow the link's session."""
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        opened = opening(text)
        if opened is None:
            await self._refuse(
                CLOSE_NOT_FOUND, NOT_SHARED, "not_found", NOT_SHARED_REASON, gone=True
            )
            return
        token, view = opened
        try:
            link = await share.lookup(token, client_address(self.scope))
        except share.GuessingLimited:
            await self._refuse(CLOSE_LIMITED, LIMITED, "limited", LIMITED_REASON)
            return
        if link is None:
            await self._refuse(
                CLOSE_NOT_FOUND, NOT_SHARED, "not_found", NOT_SHARED_REASON, gone=True
            )
            return
        self.link_id = link.pk
        await self.channel_layer.group_add(share_group(link.pk), self.channel_name)
        # Revoked between the lookup and joining the group: its revocation message was missed.
        if not await ShareLink.objects.filter(share.active(), pk=link.pk).aexists():
            await self._end(REVOKED, "revoked")
            return
        if link.expires is not None:
            delay = (link.expires - timezone.now()).total_seconds()
            self._expiry = asyncio.get_running_loop().call_later(delay, self._expired)
        await (share.record_view(link) if view else share.record_use(link))
        await self.follow(str(link.session_id))
        if self.outbox is not None:  # after the snapshot, in the flow-controlled stream
            self.outbox.put(header(link))

    async def _refuse(
        self, code: int, text: str, notice_code: str, reason: str, gone: bool = False
    ) -> None:
        """Tell the page why, then close for good (htmx does not reconnect after a 4xxx). A link
        that opens nothing (``gone``) also replaces the page's content with the styled page
        saying so (the same for a revoked, expired or unknown link). The page's HTTP answer
        was a 200 already: its token is in the URL's fragment, which never reaches a server."""
        html = render.notice(text, "error", notice_code) + (gone_page() if gone else "")
        with suppress(Exception):  # the page may be gone already
            await self.send(text_data=html)
            await self.close(code=code, reason=reason)

    def _open_timed_out(self) -> None:
        self._open_timer = None
        if not self._opened:
            self._opened = True
            self._ending = asyncio.create_task(self._open(None))

    async def _leave(self) -> None:
        for timer in (self._open_timer, self._expiry):
            if timer is not None:
                timer.cancel()
        self._open_timer = self._expiry = None
        link_id, self.link_id = self.link_id, None
        if link_id is not None:
            with suppress(Exception):  # the layer may be what failed
                await self.channel_layer.group_discard(share_group(link_id), self.channel_name)
        await super()._leave()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self._opened:
            self._opened = True
            await self._open(text_data)
            return
        if self.outbox is None:
            return
        received = ack_count(text_data, bytes_data)
        if received is not None:  # flow control, not input: the page's acks keep it streaming
            self.outbox.acknowledge(received)
            return
        # DEBUG, and one notice a while at most: a viewer must not fill the log or the socket.
        log.debug("A viewer of session %s sent a frame; refused: read-only", self.session_id)
        now = time.monotonic()
        if now - self._told_read_only >= settings.SHARE_READ_ONLY_NOTICE_SECONDS:
            self._told_read_only = now
            self.outbox.put(read_only_notice())

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
