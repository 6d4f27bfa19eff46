"""One SDK client per upstream and event loop, shared by every session of the process.

A client per session cost ~29 ms of CPU (its SSL context loads the CA store) and ~0.8 MiB of
memory each (measured by the connect-storm and concurrency benchmarks).
"""

from __future__ import annotations

import asyncio
import weakref

from openai import AsyncOpenAI

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], AsyncOpenAI]]
_clients = weakref.WeakKeyDictionary()


def shared_client(base_url: str, api_key: str) -> AsyncOpenAI:
    """The process's client for this upstream (its HTTP pool belongs to the running loop)."""
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    client = per_loop.get((base_url, api_key))
    if client is None:
        client = per_loop[(base_url, api_key)] = AsyncOpenAI(
            base_url=base_url, api_key=api_key, max_retries=0
        )
    return client


async def close_clients() -> None:
    """Close the running loop's clients (their pooled keep-alive connections): a loop that
    ends, as a test's does, would otherwise leave its sockets to the garbage collector."""
    for client in _clients.pop(asyncio.get_running_loop(), {}).values():
        await client.close()
