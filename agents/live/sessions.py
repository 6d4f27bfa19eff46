"""Which process runs which session, and how the others reach it.

A browser socket attaches here: to the session's runner in this process, started if no process
runs the session (``claim``: the lease, the fence, the recovery of a dead owner's run), or else
to a :class:`Follower`, which keeps the owner from closing for idleness and takes the session
over when the owner's lease expires (agents/live/follower.py). Tabs and staff on other processes
send their commands to the owner's mailbox (agents/live/mailbox.py), named in its lease.
"""

from __future__ import annotations

import uuid
from contextlib import suppress

from django.conf import settings

from agents.live import local
from agents.live.feed import Feed, Head, read_log
from agents.live.follower import Follower
from agents.live.lease import leases, raise_fence_and_base
from agents.live.mailbox import mailbox
from agents.live.recovery import recover
from agents.live.registry import FOLLOWED, RUNNERS, forget_follower, forget_runner
from agents.live.runner import SessionRunner
from agents.run.events import Listener
from agents.run.writes import WriteBehind
from agents.upstream.websocket import UpstreamSession


async def attach(session_id: str, listener: Listener) -> SessionRunner | None:
    """Attach a browser socket to the session's runner in this process, starting one if no
    process runs the session; None if another process does (the socket follows its feed)."""
    lock = local.claim_lock(session_id)
    async with lock:
        runner = RUNNERS.get(session_id)
        if runner is None:
            runner = await claim(session_id)
    if runner is not None:
        runner.attach(listener)
        return runner
    holder = await leases().holder(session_id)
    follower = FOLLOWED.get(session_id)
    if follower is None:
        follower = FOLLOWED[session_id] = Follower(
            session_id, holder, claim=claim, forget=forget_follower
        )
    follower.listeners.add(listener)
    follower.report()
    return None


def detach(session_id: str, listener: Listener) -> None:
    runner = RUNNERS.get(session_id)
    if runner is not None and listener in runner.listeners:
        runner.detach(listener)
    follower = FOLLOWED.get(session_id)
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
    if local.DRAINING.started:  # stopping: the session starts in a process that stays
        return None
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
            forget=forget_runner,
        )
        await runner.start()
    except BaseException:
        with suppress(Exception):
            await leases().release(session_id, holder)
        raise
    RUNNERS[session_id] = runner
    return runner
