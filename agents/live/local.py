"""This process's bookkeeping of its sessions that holds no runner: claim locks, background
tasks, and whether tabs on other processes follow a session.

Kept apart from the registry (agents/live/registry.py) so that the runner, which needs these,
does not import the module that holds the runners.
"""

from __future__ import annotations

import asyncio

from channels.layers import get_channel_layer
from django.conf import settings

from agents.live import wire
from agents.live.store import KEY_PREFIX, redis_client

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
