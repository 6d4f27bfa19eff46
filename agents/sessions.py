"""Which process runs which session, and how the others reach it.

A browser socket attaches here: to the session's runner in this process, started if no process
runs the session (``claim``: the lease, the fence, the recovery of a dead owner's run), or else
to a :class:`Follower`, which keeps the owner from closing for idleness and takes the session
over when the owner's lease expires. Tabs and staff on other processes send their commands to
the owner's mailbox, a channel of the channel layer named in its lease.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from contextlib import suppress
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

from agents import registry
from agents.events import Listener, Resync
from agents.feed import Feed, Head, read_log
from agents.inspection import report_tabs
from agents.lease import leases, raise_fence_and_base
from agents.recovery import recover
from agents.runner import SessionRunner
from agents.store import redis_client
from agents.upstream import UpstreamSession
from agents.writes import WriteBehind

log = logging.getLogger(__name__)

ASK_TIMEOUT = 2.0  # staff asking another process's runner: it answers at once, or is gone


async def attach(session_id: str, listener: Listener) -> SessionRunner | None:
    """Attach a browser socket to the session's runner in this process, starting one if no
    process runs the session; None if another process does (the socket follows its feed)."""
    lock = registry.claim_lock(session_id)
    async with lock:
        runner = registry.RUNNERS.get(session_id)
        if runner is None:
            runner = await claim(session_id)
    if runner is not None:
        runner.attach(listener)
        return runner
    holder = await leases().holder(session_id)
    follower = registry.FOLLOWED.get(session_id)
    if follower is None:
        follower = registry.FOLLOWED[session_id] = Follower(session_id, holder)
    follower.listeners.add(listener)
    follower.report()
    return None


def detach(session_id: str, listener: Listener) -> None:
    runner = registry.RUNNERS.get(session_id)
    if runner is not None and listener in runner.listeners:
        runner.detach(listener)
    follower = registry.FOLLOWED.get(session_id)
    if follower is not None and listener in follower.listeners:
        follower.listeners.discard(listener)
        follower.report()
        if not follower.listeners:
            follower.stop()


async def claim(session_id: str) -> SessionRunner | None:
    """Take the session's lease and start its runner here; None if another process holds it.

    A new runner is a new epoch: it raises the fence, finishes what a dead owner left (its
    in-flight run, as interrupted), and opens a new upstream socket (a full-context create).
    """
    # The lease names this process's mailbox: where tabs elsewhere send their commands.
    channel = await mailbox() if settings.REDIS_URL else "local"
    holder = f"{channel} {uuid.uuid4().hex}"
    if not await leases().acquire(session_id, holder):
        return None
    try:
        fence, last = await raise_fence_and_base(session_id)
        left = await read_log(session_id) if settings.REDIS_URL else None
        base = await recover(session_id, left, WriteBehind(session_id, fence), last)
        head = Head(str(fence), base, 0, running=False, turn=None)
        relay_holder = holder if settings.REDIS_URL else None
        feed = Feed(session_id, head, relay_holder)
        upstream = UpstreamSession(settings.UPSTREAM_BASE_URL, settings.OPENAI_API_KEY)
        runner = SessionRunner(
            session_id,
            upstream,
            settings.IDLE_GRACE_SECONDS,
            holder=holder,
            fence=fence,
            feed=feed,
        )
        await runner.start()
    except BaseException:
        with suppress(Exception):
            await leases().release(session_id, holder)
        raise
    registry.RUNNERS[session_id] = runner
    return runner


class Follower:
    """Tabs in this process on a session another process runs: keep the owner from closing
    for idleness, and take the session over when the owner's lease expires."""

    def __init__(self, session_id: str, holder: str | None) -> None:
        self.session_id = session_id
        self.listeners: set[Listener] = set()
        self.holder = holder  # the owner's lease value, read before the tabs read its log
        self._task = asyncio.create_task(self._watch())

    def stop(self) -> None:
        self._task.cancel()
        if registry.FOLLOWED.get(self.session_id) is self:
            del registry.FOLLOWED[self.session_id]

    def report(self) -> None:
        """This process's sockets on the session, for the inspector (in the background)."""
        registry.keep(asyncio.create_task(report_tabs(self.session_id, set(self.listeners))))

    async def _watch(self) -> None:
        interval = settings.LEASE_SECONDS / 3
        while True:
            await asyncio.sleep(interval)
            try:
                redis = redis_client()
                await redis.set(
                    registry.presence_key(self.session_id), "1", px=int(interval * 3000)
                )
                await report_tabs(self.session_id, set(self.listeners))
                holder = await leases().holder(self.session_id)
                if holder is None:
                    runner = await claim(self.session_id)
                    if runner is not None:
                        self._hand_over("This server now runs the session.")
                        return
                if holder != self.holder:
                    # A new owner: its batches may not reach us (a restarted Redis forgets
                    # group memberships), so the tabs sync with it now rather than wait.
                    self._hand_over("Another server now runs the session.")
                    return
            except Exception as exc:  # Redis is away: try again at the next beat
                log.warning("Following session %s: %s", self.session_id, exc)

    def _hand_over(self, reason: str) -> None:
        self.stop()
        for listener in list(self.listeners):
            listener.deliver(Resync(reason))


# -- this process's mailbox: commands from tabs on other processes to the runners here ----------

_mailboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, str] = weakref.WeakKeyDictionary()


_mailbox_tasks: set[asyncio.Task[None]] = set()


async def mailbox() -> str:
    """This process's channel for runner commands (one per event loop, started on first use)."""
    loop = asyncio.get_running_loop()
    name = _mailboxes.get(loop)
    if name is None:
        layer = get_channel_layer()
        assert layer is not None
        name = _mailboxes[loop] = await layer.new_channel()
        _mailbox_tasks.add(loop.create_task(_serve_mailbox(name)))
    return name


async def _serve_mailbox(name: str) -> None:
    layer = get_channel_layer()
    assert layer is not None
    while True:
        try:
            message = await layer.receive(name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis is away: wait, then listen again
            log.warning("The runner mailbox could not receive: %s", exc)
            await asyncio.sleep(1)
            continue
        runner = registry.RUNNERS.get(str(message.get("session")))
        if runner is None:
            problem: tuple[str, str] | None = ("moved", "The session moved to another server.")
        else:
            problem = runner.command(
                str(message.get("action")),
                str(message.get("message", "")),
                str(message.get("call_id", "")),
            )
        reply: dict[str, Any] = {
            "type": "runner.reply",
            "problem": list(problem) if problem else None,
        }
        if runner is not None and message.get("action") == "inspect":
            reply["inspection"] = runner.inspection(int(message.get("since") or 0))
        with suppress(Exception):
            await layer.send(str(message["reply_to"]), reply)


async def send_command(session_id: str, reply_to: str, action: str, **fields: str) -> bool:
    """Send a command to the process that runs the session; False if none does right now."""
    holder = await leases().holder(session_id)
    if holder is None:
        return False
    layer = get_channel_layer()
    assert layer is not None
    message = {
        "type": "runner.command",
        "session": session_id,
        "action": action,
        "reply_to": reply_to,
        **fields,
    }
    await layer.send(holder.split()[0], message)
    return True


async def ask_runner(session_id: str, action: str, **fields: str) -> dict[str, Any] | None:
    """Staff: run ``action`` (inspect, rotate, drop, stop) on the session's runner, in this
    process or the one holding its lease; its reply (``problem``, ``inspection``), or None
    when no process runs the session."""
    runner = registry.RUNNERS.get(session_id)
    if runner is not None:
        problem = runner.command(action)
        reply: dict[str, Any] = {"problem": list(problem) if problem else None}
        if action == "inspect":
            reply["inspection"] = runner.inspection(int(fields.get("since") or 0))
        return reply
    if not settings.REDIS_URL:
        return None
    layer = get_channel_layer()
    assert layer is not None
    reply_to = await layer.new_channel()
    if not await send_command(session_id, reply_to, action, **fields):
        return None
    try:
        answer: dict[str, Any] = await asyncio.wait_for(layer.receive(reply_to), ASK_TIMEOUT)
    except TimeoutError:
        return None
    return answer
