"""This process's mailbox: commands from tabs and staff on other processes to the runners here.

A runner's lease names the mailbox channel of its process; ``send_command`` reads it and sends
there, the mailbox runs the command on the runner and replies to the sender's channel.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import weakref
from contextlib import suppress
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

from agents.live import wire
from agents.live.lease import leases
from agents.live.registry import RUNNERS
from agents.live.runner import SessionRunner

log = logging.getLogger(__name__)

ASK_TIMEOUT = 2.0  # staff asking another process's runner: it answers at once, or is gone

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
        # The process's task, whichever session's socket started it: an empty context, so its
        # log lines name no session.
        _mailbox_tasks.add(loop.create_task(_serve(name), context=contextvars.Context()))
    return name


def _run(runner: SessionRunner | None, action: str, since: int, **fields: str) -> wire.RunnerReply:
    """Run a command on a runner of this process, as its reply."""
    if runner is None:
        problem: tuple[str, str] | None = ("moved", "The session moved to another server.")
    else:
        problem = runner.command(action, fields.get("message", ""), fields.get("target", ""))
    reply: wire.RunnerReply = {
        "type": wire.RUNNER_REPLY,
        "problem": list(problem) if problem else None,
    }
    if runner is not None and action == "inspect":
        reply["inspection"] = runner.inspection(since)
    return reply


async def _serve(name: str) -> None:
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
        runner = RUNNERS.get(str(message.get("session")))
        fields = {k: str(message.get(k, "")) for k in ("message", "target")}
        since = int(message.get("since") or 0)
        reply = _run(runner, str(message.get("action")), since, **fields)
        with suppress(Exception):
            await layer.send(str(message["reply_to"]), dict(reply))


async def send_command(session_id: str, reply_to: str, action: str, **fields: str) -> bool:
    """Send a command to the process that runs the session; False if none does right now."""
    holder = await leases().holder(session_id)
    if holder is None:
        return False
    layer = get_channel_layer()
    assert layer is not None
    message: wire.RunnerCommand = {
        "type": wire.RUNNER_COMMAND,
        "session": session_id,
        "action": action,
        "reply_to": reply_to,
    }
    await layer.send(holder.split()[0], {**message, **fields})
    return True


async def ask_runner(session_id: str, action: str, **fields: str) -> dict[str, Any] | None:
    """Staff: run ``action`` (inspect, rotate, drop, stop) on the session's runner, in this
    process or the one holding its lease; its reply (``problem``, ``inspection``), or None
    when no process runs the session."""
    runner = RUNNERS.get(session_id)
    if runner is not None:
        return dict(_run(runner, action, int(fields.get("since") or 0)))
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
