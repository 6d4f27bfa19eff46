"""The context store: a session's hot, shared state (chain head, whether a run is in flight).

Redis when ``REDIS_URL`` is set, so every process sees the same state; process memory otherwise.
The database stays the durable truth: everything here can be lost and rebuilt.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Protocol

import redis.asyncio as redis
from django.conf import settings

KEY_PREFIX = "playground:session:"
# Hot state outlives an idle session by a day, then Redis forgets it.
TTL_SECONDS = 24 * 3600


class ContextStore(Protocol):
    async def get(self, session_id: str) -> dict[str, str]: ...

    async def get_many(self, session_ids: list[str]) -> list[dict[str, str]]: ...

    async def update(self, session_id: str, **values: str) -> None: ...


class MemoryContextStore:
    def __init__(self) -> None:
        self._data: dict[str, dict[str, str]] = {}

    async def get(self, session_id: str) -> dict[str, str]:
        return dict(self._data.get(session_id, {}))

    async def get_many(self, session_ids: list[str]) -> list[dict[str, str]]:
        return [dict(self._data.get(session_id, {})) for session_id in session_ids]

    async def update(self, session_id: str, **values: str) -> None:
        self._data.setdefault(session_id, {}).update(values)


class RedisContextStore:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    async def get(self, session_id: str) -> dict[str, str]:
        values = await self._redis.hgetall(KEY_PREFIX + session_id)
        return {str(k): str(v) for k, v in values.items()}

    async def get_many(self, session_ids: list[str]) -> list[dict[str, str]]:
        """Many sessions' state in one round trip (the inspector's list)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for session_id in session_ids:
                pipe.hgetall(KEY_PREFIX + session_id)
            found = await pipe.execute()
        return [{str(k): str(v) for k, v in values.items()} for values in found]

    async def update(self, session_id: str, **values: str) -> None:
        key = KEY_PREFIX + session_id
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=values)  # type: ignore[arg-type]
            pipe.expire(key, TTL_SECONDS)
            await pipe.execute()


_memory = MemoryContextStore()
# A Redis client's connections belong to the event loop that opened them.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.Redis] = (
    weakref.WeakKeyDictionary()
)


def redis_client() -> redis.Redis:
    """This event loop's client of ``REDIS_URL`` (the store, the leases and the feed log)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        # The channel layer's options: idle connections survive, a Redis restart is retried.
        options: dict[str, Any] = settings.REDIS_OPTIONS
        # redis-py's pool allows 100 connections, and then raises "Too many connections": a
        # process with hundreds of running sessions renews their leases and relays their
        # feeds at once. As many as the channel layer's.
        client = _clients[loop] = redis.Redis.from_url(
            settings.REDIS_URL,
            decode_responses=True,
            max_connections=settings.REDIS_MAX_CONNECTIONS,
            **options,
        )
    return client


def context_store() -> ContextStore:
    if not settings.REDIS_URL:
        return _memory
    return RedisContextStore(redis_client())
