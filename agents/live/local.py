"""This process's bookkeeping of its sessions that holds no runner: claim locks, background
tasks, whether tabs on other processes follow a session, and whether the process is draining
(stopping: agents/live/drain.py), with the browser sockets it then sends elsewhere.

Kept apart from the registry (agents/live/registry.py) so that the runner, which needs these,
does not import the module that holds the runners.
"""

from __future__ import annotations

import asyncio
import weakref
from contextlib import suppress
from typing import Protocol

from channels.layers import get_channel_layer
from django.conf import settings

from agents.live import wire
from agents.live.store import KEY_PREFIX, redis_client
from playground.protocol import CLOSE_RESTART

_claims: dict[str, asyncio.Lock] = {}
_background: set[asyncio.Task[None]] = set()


def claim_lock(session_id: str) -> asyncio.Lock:
    """Held while a runner of the session starts or ends in this process: the two never
    hold upstream sockets at the same time."""
    return _claims.setdefault(session_id, asyncio.Lock())


def keep(task: asyncio.Task[None]) -> None:
    """Keep a fire-and-forget task (the inspector's reports) alive until it is done."""
    _background.add(task)
    task.add_done_callback(_background.discard)


def presence_key(session_id: str) -> str:
    return f"{KEY_PREFIX}{session_id}:followed"


async def followed_elsewhere(session_id: str) -> bool:
    """Whether tabs on another process follow the session (its runner must stay)."""
    if not settings.REDIS_URL:
        return False
    try:
        return bool(await redis_client().exists(presence_key(session_id)))
    except Exception:
        return False


async def announce_left(session_id: str) -> None:
    """Tell the session's tabs on other processes that its runner is gone (wire.OwnerLeft):
    their process takes it over at once rather than at its follower's next beat."""
    if not settings.REDIS_URL:
        return
    layer = get_channel_layer()
    if layer is not None:
        message: wire.OwnerLeft = {"type": wire.OWNER_LEFT}
        await layer.group_send(wire.session_group(session_id), dict(message))


# -- draining (agents/live/drain.py): read by the runner, the claim and every browser socket --


class Closable(Protocol):
    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None: ...


class Draining:
    """Whether this process is draining, and the browser sockets it must close when it does."""

    def __init__(self) -> None:
        self.started = False
        self.sockets: weakref.WeakSet[Closable] = weakref.WeakSet()

    def opened(self, socket: Closable) -> None:
        """A socket accepted; one accepted after the drain began (its connection was queued
        before the listening socket closed) is sent elsewhere at once."""
        if self.started:
            keep(asyncio.get_running_loop().create_task(close_socket(socket)))
        else:
            self.sockets.add(socket)

    def closed(self, socket: Closable) -> None:
        self.sockets.discard(socket)


DRAINING = Draining()


async def close_socket(socket: Closable) -> None:
    """Send a browser socket elsewhere: the page reconnects at once (static/playground.js)."""
    with suppress(Exception):
        await socket.close(code=CLOSE_RESTART, reason="This server is restarting.")
