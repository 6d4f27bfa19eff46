"""The browser's sockets to a session: follow its feed (:class:`FeedConsumer`), and the owner's
tab, which also sends commands (:class:`SessionConsumer`; the share viewer is in ``viewer``).

On connect (and whenever it must resync) a socket sends one snapshot: the durable transcript,
then the in-flight log, then it follows the feed live, so a tab that reconnects at any moment
shows exactly the server's transcript. The feed comes straight from the runner when this process
runs the session, else in batches through the channel layer; commands go to the runner, here or
in the process that holds the session's lease.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Any

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from redis.exceptions import RedisError

from agents import admission, sessions
from agents.events import Resync, RunEvent
from agents.feed import Snapshot, batch_events, group_name, read_log
from agents.runner import SessionRunner
from agents.store import context_store
from playground import quotas, render
from playground.access import visible_sessions
from playground.outbox import Outbox
from playground.protocol import (
    CLOSE_FORBIDDEN,
    CLOSE_RESTART,
    CLOSE_RETRY,
    Action,
    FrameError,
    parse_frame,
)
from playground.socket_auth import resolve_user

log = logging.getLogger(__name__)

REPLY_TIMEOUT = 5.0


class FeedConsumer(AsyncWebsocketConsumer):
    """A socket that shows a session: a snapshot, then the live feed, resynced when needed.
    Subclasses authorise in ``connect`` and then call :meth:`follow`."""

    read_only: bool = False  # a viewer's socket: no commands, and no controls in its fragments
    session_id = ""
    runner: SessionRunner | None = None  # this process runs the session
    outbox: Outbox | None = None
    # Following another process's runner: its epoch and the last event applied.
    epoch: str | None = None
    seq = 0
    _catching_up = False
    _resync_task: asyncio.Task[None] | None = None
    _catch_up_again = False
    _early: list[dict[str, Any]] | None = None  # batches that came during a sync

    async def follow(self, session_id: str) -> None:
        """Start showing the session (once authorised and accepted), in a connect slot."""
        async with admission.connect_slot():
            await self.show(session_id)

    async def show(self, session_id: str) -> None:
        """Start showing the session; the caller holds a connect slot (agents/admission.py)."""
        self.session_id = session_id
        render_event = render.viewer_event_html if self.read_only else render.event_html
        self.outbox = Outbox(self.send, lambda: self._resync("slow"), render_event)
        await self._catch_up()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        except (RedisError, OSError) as exc:
            # The channel layer lost Redis: close (the page comes back with backoff), no trace.
            log.warning(
                "Socket on session %s closed: the channel layer failed: %s", self.session_id, exc
            )
            with suppress(Exception):
                await send({"type": "websocket.close", "code": CLOSE_RETRY})
        finally:
            # Also when the consumer died without a disconnect (its channel layer failed):
            # a dead socket must not stay attached to a runner.
            await self._leave()

    async def disconnect(self, code: int) -> None:
        await self._leave()

    async def _leave(self) -> None:
        outbox, self.outbox = self.outbox, None
        if outbox is None:
            return
        if self._resync_task is not None:
            self._resync_task.cancel()
        sessions.detach(self.session_id, self)
        self.runner = None
        with suppress(Exception):  # the layer may be what failed
            await self.channel_layer.group_discard(group_name(self.session_id), self.channel_name)
        await outbox.close()

    # -- the feed --------------------------------------------------------------------------------

    async def _catch_up(self) -> None:
        """Send the snapshot, then follow: from the runner here, or from another process.
        (Not named ``_sync``: Channels reads that attribute to tell sync consumers apart.)"""
        outbox = self.outbox
        if outbox is None:
            return  # the socket is gone
        self._catching_up = True
        try:
            sessions.detach(self.session_id, self)
            outbox.hold()
            # Join the group before reading the log, so no batch falls between the two; again
            # at every sync, as a restarted Redis has forgotten the group.
            await self.channel_layer.group_add(group_name(self.session_id), self.channel_name)
            self.runner, self.epoch, self._early = None, None, []
            runner = await sessions.attach(self.session_id, self)
            if runner is not None:
                # Taken in the same step as attaching: every later event is queued after it.
                snap = runner.feed.snapshot()
                self.runner = runner
            else:
                snap = await read_log(self.session_id)
                self.epoch = snap.head.epoch if snap.head else None
                self.seq = snap.seq
            html = await self._render(snap)
        finally:
            self._catching_up = False
        if self.outbox is not outbox:  # the socket left meanwhile
            sessions.detach(self.session_id, self)
            return
        outbox.release(html)
        early, self._early = self._early or [], None
        for message in early:
            self._follow(message)
        if self._catch_up_again:
            self._catch_up_again = False
            await self._catch_up()

    async def _render(self, snap: Snapshot) -> str:
        head = snap.head
        transcript = await render.durable_transcript(self.session_id, head)
        if head is None:  # the log is gone: the database as it is, no guessing
            running = bool((await context_store().get(self.session_id)).get("running"))
            return render.snapshot(transcript, [], running, self.read_only)
        events = [event for _, event in snap.events]
        return render.snapshot(transcript, events, head.running, self.read_only)

    def _resync(self, reason: str) -> None:
        log.debug("Socket on session %s resyncs: %s", self.session_id, reason)
        if self._catching_up:
            self._catch_up_again = True  # once the catch-up in progress is done
        else:
            self._resync_task = asyncio.create_task(self._catch_up_or_close())

    async def _catch_up_or_close(self) -> None:
        try:
            await self._catch_up()
        except Exception as exc:  # e.g. Redis is away: the page reconnects, with backoff
            log.warning("Socket on session %s could not catch up: %s", self.session_id, exc)
            with suppress(Exception):
                await self.close(code=CLOSE_RETRY)

    def deliver(self, event: RunEvent | Resync) -> None:
        """Called by the runner for each of its events; queued, never awaited here."""
        if isinstance(event, Resync):
            self._resync(event.reason)
        elif self.outbox is not None:
            self.outbox.put_event(event)

    async def feed_batch(self, message: dict[str, Any]) -> None:
        """Group message: a batch of another process's feed."""
        if self._early is not None:
            self._early.append(message)
        elif self.runner is None:
            self._follow(message)

    def _follow(self, message: dict[str, Any]) -> None:
        if self.epoch is None or self.outbox is None or self.runner is not None:
            return  # not following a feed (yet): the next sync decides
        if message["epoch"] != self.epoch or int(message["after"]) > self.seq:
            self._resync("missed a batch")  # a new owner, or a batch lost on the way
            return
        for seq, event in batch_events(message):
            if seq > self.seq:
                self.outbox.put_event(event)
                self.seq = seq

    async def session_changed(self, message: dict[str, Any]) -> None:
        """Group message from a view: the settings or tools changed (on any page or tab)."""
        if self.outbox is not None:
            self.outbox.put(render.notice(str(message.get("text", "")), "info", "changed"))
        if self.runner is not None:
            self.runner.warm()

    async def session_close(self, message: dict[str, Any]) -> None:
        """Group message from the inspector: staff closes every socket on the session.
        CLOSE_RESTART: the page reconnects (static/playground.js) and comes back in a fresh sync."""
        if self.outbox is not None:
            self.outbox.put(render.notice(str(message.get("reason", "")), "info", "closed"))
        await self.close(code=CLOSE_RESTART)


def may_see(scope: Any, session_id: str) -> bool:
    """Whether the socket's user or browser may see the session: one trip to the database
    thread for the user and the session both (a storm of connects queues on that thread)."""
    browser = scope.get("session")
    visible = visible_sessions(resolve_user(scope), browser.session_key if browser else None)
    return visible.filter(pk=session_id).exists()


class SessionConsumer(FeedConsumer):
    """The owner's tab: follows the session and sends its commands (send, stop, answers)."""

    read_only = False
    _unanswered: asyncio.TimerHandle | None = None  # a command sent to another process

    async def connect(self) -> None:
        session_id = str(self.scope["url_route"]["kwargs"]["session_id"])
        # Accept, then close with 4403: a close before accept is an HTTP 403 that browsers
        # report as 1006, which htmx retries forever. Accepting first also keeps the handshake
        # quick under a storm: the socket then waits its turn for a connect slot.
        await self.accept()
        async with admission.connect_slot():
            if await sync_to_async(may_see)(self.scope, session_id):
                await self.show(session_id)
                return
        await self.close(code=CLOSE_FORBIDDEN, reason="This session is not yours.")

    # -- commands --------------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.outbox is None:
            return
        try:
            action = parse_frame(text_data, bytes_data)
        except FrameError as error:
            self.outbox.put(render.notice(error.message, "error", error.code))
            return
        if action.name == "ack":
            self.outbox.acknowledge(action.received)
            return
        if action.name == "send":
            refusal = await quotas.run_refusal(quotas.socket_address(self.scope))
            if refusal:
                self._refused("rate_limited", refusal)
                return
        if self.runner is not None:
            problem = self.runner.command(action.name, action.message, action.call_id)
            if problem is not None:
                self._refused(*problem)
        else:
            await self._send_command(action)

    async def _send_command(self, action: Action) -> None:
        assert self.outbox is not None
        fields = {"message": action.message, "call_id": action.call_id}
        if not await sessions.send_command(
            self.session_id, self.channel_name, action.name, **fields
        ):
            self._refused("moved", "No server runs this session right now; reconnecting.")
            return
        loop = asyncio.get_running_loop()
        if self._unanswered is not None:
            self._unanswered.cancel()
        self._unanswered = loop.call_later(REPLY_TIMEOUT, self._no_reply)

    def _no_reply(self) -> None:
        self._refused("no_reply", "The server running this session did not answer; try again.")

    async def runner_reply(self, message: dict[str, Any]) -> None:
        """Channel message: the answer of another process's runner to a command."""
        if self._unanswered is not None:
            self._unanswered.cancel()
            self._unanswered = None
        if message.get("problem"):
            code, text = message["problem"]
            self._refused(str(code), str(text))

    def _refused(self, code: str, text: str) -> None:
        if self.outbox is None:
            return
        level = "info" if code == "idle" else "error"
        self.outbox.put(render.notice(text, level, code))
        if code == "moved":
            self._resync(code)
