"""What every browser socket on a session does: follow it. The owner's tab adds commands
(playground/consumers.py), the share viewer a token and read-only (playground/viewer.py).

A consumer authorises, parses, forwards and sends; what the socket follows and how it stays
exact (snapshot, then every later event once, wherever the session runs) is the subscription's
(agents/live/subscription.py). What the socket sends goes through its outbox (flow control).
"""

from __future__ import annotations

import logging
import time
from contextlib import suppress
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from redis.exceptions import RedisError

from agents.live import admission, wire
from agents.live.feed import Snapshot
from agents.live.local import DRAINING
from agents.live.registry import FOLLOWED
from agents.live.runner import Problem
from agents.live.store import context_store
from agents.live.subscription import Subscription
from agents.metrics import BROWSER_SOCKETS
from agents.run.events import RunEvent
from playground import render
from playground.access_log import loggable_path
from playground.logging import session_context
from playground.outbox import Outbox
from playground.protocol import CLOSE_RESTART, CLOSE_RETRY

log = logging.getLogger(__name__)
# The sockets' open and close lines, beside the requests' (playground/access_log.py).
access = logging.getLogger("playground.access")


class FeedConsumer(AsyncWebsocketConsumer):
    """A socket that shows a session; subclasses authorise, then call :meth:`follow` (or
    :meth:`show` from inside a connect slot). It is the subscription's view."""

    read_only: bool = False  # a viewer's socket: no commands, and no controls in its fragments
    session_id = ""
    outbox: Outbox | None = None
    subscription: Subscription | None = None
    _opened_at: float | None = None  # when it was accepted (monotonic)
    _close: tuple[int | None, str] | None = None  # the first close: its code, and by whom

    async def follow(self, session_id: str) -> None:
        async with admission.connect_slot():
            await self.show_session(session_id)

    async def show_session(self, session_id: str) -> None:
        """The caller holds a connect slot (agents/live/admission.py)."""
        self.session_id = session_id
        session_context.set(session_id)  # a viewer's session is known only now
        render_event = render.viewer_event_html if self.read_only else render.event_html
        subscription = self.subscription = Subscription(session_id, self)
        self.outbox = Outbox(self.send_text, lambda: subscription.resync("slow"), render_event)
        await subscription.sync()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        BROWSER_SOCKETS.inc()  # for the socket's whole life, from the handshake to the close
        try:
            await super().__call__(scope, receive, send)
        except (RedisError, OSError) as exc:
            # The channel layer lost Redis: close (the page comes back with backoff), no trace.
            log.warning(
                "Socket on session %s closed: the channel layer failed: %s", self.session_id, exc
            )
            self._close = self._close or (CLOSE_RETRY, "server")
            with suppress(Exception):
                await send({"type": "websocket.close", "code": CLOSE_RETRY})
        finally:
            BROWSER_SOCKETS.dec()
            DRAINING.closed(self)
            # Also when the consumer died without a disconnect (its channel layer failed):
            # a dead socket must not stay attached to a runner.
            await self._leave()
            self._log_close()

    async def dispatch(self, message: Any) -> None:
        """Channels' own, without its trip to the database thread before every message (to
        close that thread's stale connection): a tab acknowledges every frame it applies, and
        the trips cost more than the stream. The database thread checks its connection at the
        start of each of its own trips instead (agents/dbthread.py)."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def send_text(self, text: str) -> None:
        """``send(text_data=...)``, straight to the server: one call per frame, not three."""
        await self.base_send({"type": "websocket.send", "text": text})  # type: ignore[arg-type]

    async def disconnect(self, code: int) -> None:
        self._close = self._close or (code, "client")
        await self._leave()

    # -- the access log's lines: one at the accept, one at the close -----------------------------

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        await super().accept(subprotocol, headers)
        self._opened_at = time.monotonic()
        DRAINING.opened(self)  # closed with CLOSE_RESTART if this process is asked to stop
        # Every line of this socket's task names its session (the owner's tab knows it from
        # its path; a viewer's once its link opened one, in show_session).
        session_id = self.scope.get("url_route", {}).get("kwargs", {}).get("session_id")
        if session_id is not None:
            session_context.set(str(session_id))
        path, client = loggable_path(self.scope["path"]), (self.scope.get("client") or ["-"])[0]
        access.info(
            "Socket open %s from %s",
            path,
            client,
            extra={"event": "socket_open", "path": path, "client": client},
        )

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        # Without a code (or Channels' True) the server closes with 1000, as ASGI says.
        number = code if isinstance(code, int) and not isinstance(code, bool) else 1000
        self._close = self._close or (number, "server")
        await super().close(code, reason)

    def _log_close(self) -> None:
        if self._opened_at is None:
            return  # never accepted: not a socket the page had
        code, by = self._close or (None, "")
        duration = round((time.monotonic() - self._opened_at) * 1000)
        path = loggable_path(self.scope["path"])
        self._opened_at = None
        access.info(
            "Socket close %s code=%s by %s after %d ms",
            path,
            code if code is not None else "-",
            by or "-",
            duration,
            extra={
                "event": "socket_close",
                "path": path,
                "code": code,
                "closed_by": by,
                "duration_ms": duration,
            },
        )

    async def _leave(self) -> None:
        outbox, self.outbox = self.outbox, None
        if outbox is None or self.subscription is None:
            return
        self.subscription.close()
        with suppress(Exception):  # the layer may be what failed
            for group in (wire.session_group(self.session_id), wire.feed_group(self.session_id)):
                await self.channel_layer.group_discard(group, self.channel_name)
        await outbox.close()

    # -- the subscription's view (agents/live/subscription.py) -----------------------------------

    async def join(self) -> None:
        # Again at every sync: a restarted Redis has forgotten the groups.
        await self.channel_layer.group_add(wire.session_group(self.session_id), self.channel_name)
        await self.channel_layer.group_add(wire.feed_group(self.session_id), self.channel_name)

    async def unfollow(self) -> None:
        await self.channel_layer.group_discard(wire.feed_group(self.session_id), self.channel_name)

    def hold(self) -> None:
        if self.outbox is not None:
            self.outbox.hold()

    async def render(self, snap: Snapshot) -> str:
        head = snap.head
        transcript = await render.durable_transcript(self.session_id, head, self.read_only)
        if head is None:  # the log is gone: the database as it is, no guessing
            running = bool((await context_store().get(self.session_id)).get("running"))
            return render.snapshot(transcript, [], running, self.read_only)
        events = [event for _, event in snap.events]
        return render.snapshot(transcript, events, head.running, self.read_only)

    def show(self, snapshot_html: str) -> None:
        if self.outbox is not None:
            self.outbox.release(snapshot_html)

    def put(self, event: RunEvent) -> None:
        if self.outbox is not None:
            self.outbox.put_event(event)

    def refused(self, problem: Problem) -> None:
        code, text = problem
        if self.outbox is not None:
            self.outbox.put(render.notice(text, "info" if code == "idle" else "error", code))

    async def failed(self) -> None:
        with suppress(Exception):
            await self.close(code=CLOSE_RETRY)

    # -- group messages (agents/live/wire.py) ----------------------------------------------------

    async def feed_batch(self, message: wire.FeedBatch) -> None:
        if self.subscription is not None:
            self.subscription.batch(message)

    async def session_changed(self, message: wire.SessionChanged) -> None:
        """A view changed the settings or tools (on any page or tab)."""
        if self.outbox is not None:
            self.outbox.put(render.notice(str(message.get("text", "")), "info", "changed"))
        if self.subscription is not None:
            self.subscription.changed()

    async def owner_left(self, message: wire.OwnerLeft) -> None:
        follower = FOLLOWED.get(self.session_id)
        if follower is not None:
            follower.wake()

    async def session_close(self, message: wire.SessionClose) -> None:
        """Staff closes every socket on the session. CLOSE_RESTART: the page reconnects
        (static/playground.js) and comes back in a fresh sync."""
        if self.outbox is not None:
            self.outbox.put(render.notice(str(message.get("reason", "")), "info", "closed"))
        await self.close(code=CLOSE_RESTART)
