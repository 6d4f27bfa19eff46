"""A socket's subscription to a session: a snapshot, then every later event, exactly once.

The socket does not know where the session runs. When this process runs it, the subscription
attaches to the runner and takes the feed's snapshot in the same step; when another process
does, it reads that process's log from Redis and then applies the feed's batches through the
channel layer, numbered by epoch and sequence: a batch from a new owner or after a gap means a
fresh snapshot (a resync), and batches that arrive while a snapshot is taken wait for it.
Commands go to the runner, here or in the process that holds the session's lease.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from agents.live import mailbox, sessions, wire
from agents.live.feed import Snapshot, batch_events, read_log
from agents.live.runner import Problem, SessionRunner
from agents.run.events import Compared, Rebranched, Resync, RunEvent

log = logging.getLogger(__name__)

REPLY_TIMEOUT = 5.0  # a command sent to another process: its runner answers, or it is gone
NO_RUNNER: Problem = ("moved", "No server runs this session right now; reconnecting.")
NO_REPLY: Problem = ("no_reply", "The server running this session did not answer; try again.")


class View(Protocol):
    """What shows the session: a browser socket (playground/consumers.py)."""

    channel_name: str

    async def join(self) -> None:
        """Join the session's groups (its feed's too), so no batch falls between the snapshot
        and the feed."""

    async def unfollow(self) -> None:
        """Leave the feed's group: the runner is in this process and delivers itself."""

    def hold(self) -> None:
        """Hold back events until the snapshot is shown."""

    async def render(self, snap: Snapshot) -> str: ...

    def show(self, snapshot_html: str) -> None:
        """Show the snapshot, then what was held back."""

    def put(self, event: RunEvent) -> None: ...

    def refused(self, problem: Problem) -> None:
        """A command could not be done: say why."""

    async def failed(self) -> None:
        """No snapshot could be taken (Redis is away): the socket must come back later."""


class Subscription:
    def __init__(self, session_id: str, view: View) -> None:
        self.session_id = session_id
        self.view = view
        self.runner: SessionRunner | None = None  # this process runs the session
        # Following another process's runner: its epoch and the last event applied.
        self.epoch: str | None = None
        self.seq = 0
        self.closed = False
        self._syncing = False
        self._sync_again = False
        self._early: list[wire.FeedBatch] | None = None  # batches that came during a sync
        self._resync_task: asyncio.Task[None] | None = None
        self._unanswered: asyncio.TimerHandle | None = None

    async def sync(self) -> None:
        """Show a snapshot, then follow: the runner here, or another process's feed."""
        if self.closed:
            return
        self._syncing = True
        try:
            sessions.detach(self.session_id, self)
            self.view.hold()
            await self.view.join()
            self.runner, self.epoch, self._early = None, None, []
            runner = await sessions.attach(self.session_id, self)
            if runner is not None:
                # Taken in the same step as attaching: every later event is queued after it.
                snap = runner.feed.snapshot()
                self.runner = runner
                await self.view.unfollow()
            else:
                snap = await read_log(self.session_id)
                self.epoch = snap.head.epoch if snap.head else None
                self.seq = snap.seq
            html = await self.view.render(snap)
        finally:
            self._syncing = False
        if self._left():  # the socket left meanwhile
            sessions.detach(self.session_id, self)
            return
        self.view.show(html)
        early, self._early = self._early or [], None
        for message in early:
            self._follow(message)
        if self._sync_again:
            self._sync_again = False
            await self.sync()

    def _left(self) -> bool:
        return self.closed

    def resync(self, reason: str) -> None:
        log.debug("Socket on session %s resyncs: %s", self.session_id, reason)
        if self._syncing:
            self._sync_again = True  # once the sync in progress is done
        elif not self.closed:
            self._resync_task = asyncio.create_task(self._sync_or_fail())

    async def _sync_or_fail(self) -> None:
        try:
            await self.sync()
        except Exception as exc:  # e.g. Redis is away: the page reconnects, with backoff
            log.warning("Socket on session %s could not catch up: %s", self.session_id, exc)
            await self.view.failed()

    def close(self) -> None:
        self.closed = True
        for pending in (self._resync_task, self._unanswered):
            if pending is not None:
                pending.cancel()
        sessions.detach(self.session_id, self)
        self.runner = None

    # -- the feed --------------------------------------------------------------------------------

    def deliver(self, event: RunEvent | Resync) -> None:
        """Called by the runner here for each of its events; queued, never awaited."""
        if isinstance(event, Resync):
            self.resync(event.reason)
        elif isinstance(event, Rebranched | Compared):
            self.resync("the branch changed")  # the transcript is redrawn from the database
        elif not self.closed:
            self.view.put(event)

    def batch(self, message: wire.FeedBatch) -> None:
        """A batch of another process's feed."""
        if self._early is not None:
            self._early.append(message)
        elif self.runner is None:
            self._follow(message)

    def _follow(self, message: wire.FeedBatch) -> None:
        if self.closed or self.runner is not None:
            return  # the runner here delivers its events itself
        if self.epoch is None or message["epoch"] != self.epoch or int(message["after"]) > self.seq:
            # The owner had written no log yet when this socket synced (its lease came first,
            # as after a Redis restart), a new owner, or a batch lost on the way. Dropping the
            # batch instead left the socket deaf: nothing else would sync it again.
            self.resync("missed a batch")
            return
        for seq, event in batch_events(message):
            if seq > self.seq:
                self.seq = seq
                if isinstance(event, Rebranched | Compared):
                    self.resync("the branch changed")
                    return
                self.view.put(event)

    def changed(self) -> None:
        """The session's settings or tools changed: the runner here warms its upstream."""
        if self.runner is not None:
            self.runner.warm()

    # -- commands --------------------------------------------------------------------------------

    async def command(self, action: str, message: str = "", target: str = "") -> None:
        """Run a command on the session's runner; a problem goes to ``view.refused``."""
        if self.runner is not None:
            problem = self.runner.command(action, message, target)
            if problem is not None:
                self.refused(problem)
            return
        fields = {"message": message, "target": target}
        name = self.view.channel_name
        if not await mailbox.send_command(self.session_id, name, action, **fields):
            self.refused(NO_RUNNER)
            return
        if self._unanswered is not None:
            self._unanswered.cancel()
        loop = asyncio.get_running_loop()
        self._unanswered = loop.call_later(REPLY_TIMEOUT, self.refused, NO_REPLY)

    def reply(self, message: wire.RunnerReply) -> None:
        """Another process's runner answered a command."""
        if self._unanswered is not None:
            self._unanswered.cancel()
            self._unanswered = None
        problem = message.get("problem")
        if problem:
            self.refused((str(problem[0]), str(problem[1])))

    def refused(self, problem: Problem) -> None:
        self.view.refused(problem)
        if problem[0] == "moved":
            self.resync("moved")
