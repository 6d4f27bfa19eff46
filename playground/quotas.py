"""Quotas: how much one visitor may create, so that nobody can exhaust the server, its database or
a paid API key behind it. Each limit is a setting (``QUOTA_*``, see docs/security.md); each
refusal is a message that says what to do.

Counts per client address (new sessions an hour here, failed share-token lookups in ``share``)
live in a :class:`WindowCounter`: Redis when ``REDIS_URL`` is set, so every process counts
together, else this process's memory. Runs a minute are counted by each session's runner
(``agents/live/runner.py``), the one place that starts them.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Mapping
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest

from agents.live.store import redis_client
from agents.models import Session, Tool

# The in-process counter forgets keys whose window ended once it holds this many.
MEMORY_ENTRIES = 10_000
HOUR = 3600


class WindowCounter:
    """Events per key in fixed windows, each starting at its key's first event."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix  # of its Redis keys
        # In process: key -> (when its window started, on the monotonic clock; events in it).
        self.memory: dict[str, tuple[float, int]] = {}

    def reset(self) -> None:
        """Forget the in-process counts (tests start each from a clean slate)."""
        self.memory.clear()

    async def count(self, key: str, window: int) -> int:
        if settings.REDIS_URL:
            return int(await redis_client().get(self.prefix + key) or 0)
        entry = self.memory.get(key)
        if entry is None:
            return 0
        started, events = entry
        if time.monotonic() - started >= window:
            del self.memory[key]
            return 0
        return events

    async def add(self, key: str, window: int) -> int:
        """Count one event of ``key``; how many its window now holds."""
        if settings.REDIS_URL:
            async with redis_client().pipeline(transaction=True) as pipe:
                pipe.incr(self.prefix + key)
                pipe.expire(self.prefix + key, window, nx=True)  # from the first event on
                events, _ = await pipe.execute()
            return int(events)
        now = time.monotonic()
        if len(self.memory) >= MEMORY_ENTRIES:
            for old, (started, _) in list(self.memory.items()):
                if now - started >= window:
                    del self.memory[old]
        started, events = self.memory.get(key, (now, 0))
        if now - started >= window:
            started, events = now, 0
        self.memory[key] = (started, events + 1)
        return events + 1


new_sessions = WindowCounter("playground:quota:new-sessions:")
runs = WindowCounter("playground:quota:runs:")
MINUTE = 60


def reset() -> None:
    new_sessions.reset()
    runs.reset()


def client_address(request: HttpRequest) -> str:
    """Who counts as one client: its address (set from X-Forwarded-For by daphne's
    ``--proxy-headers`` behind a proxy); an IPv6 client by its /64, which one host can span."""
    return counted_address(str(request.META.get("REMOTE_ADDR") or "unknown"))


def socket_address(scope: Mapping[str, Any]) -> str:
    """:func:`client_address` of a socket's ASGI scope."""
    client = scope.get("client")
    return counted_address(str(client[0]) if isinstance(client, (list, tuple)) else "unknown")


async def run_refusal(address: str) -> str:
    """Why a message from ``address`` may not start a run ("" if it may; then it counts).
    Each session's runner also limits its own runs (``QUOTA_RUNS_PER_MINUTE``); this bounds
    a visitor who spreads runs over many sessions, or many browsers."""
    limit = settings.QUOTA_RUNS_PER_ADDRESS_PER_MINUTE
    if await runs.add(address, MINUTE) > limit:
        return f"You may start at most {limit} runs a minute from your address: wait a minute."
    return ""


def counted_address(address: str) -> str:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return address


def new_session_refusal(request: HttpRequest, owned: QuerySet[Session]) -> str:
    """Why this visitor, who owns ``owned``, may not create one more session ("" if it may);
    a session it may create is counted against its address."""
    limit = settings.QUOTA_SESSIONS_PER_OWNER
    if owned.count() >= limit:
        return (
            f"You already have {limit} sessions, the most one owner may keep: "
            "continue in one of them."
        )
    hourly = settings.QUOTA_NEW_SESSIONS_PER_HOUR
    if async_to_sync(new_sessions.add)(client_address(request), HOUR) > hourly:
        return (
            f"Too many new sessions from your address (at most {hourly} an hour): continue "
            "in one of your sessions, or wait a while."
        )
    return ""


def too_long(what: str, limit: int, size: str) -> str:
    """The refusal of a text over its limit; ``size`` says how long it is (or a placeholder)."""
    return f"{what} may have at most {limit:,} characters (this has {size}): shorten it."


def too_many_tools(limit: int) -> str:
    return f"This session already has {limit} tools, the most a session may have: delete one first."


def imported_problem(session: Session, tools: list[Tool]) -> str:
    """What in an imported session exceeds the limits the forms keep ("" if nothing)."""
    limit = settings.QUOTA_INSTRUCTIONS_CHARS
    if len(session.instructions) > limit:
        return too_long("Instructions", limit, f"{len(session.instructions):,}")
    most = settings.QUOTA_TOOLS_PER_SESSION
    if len(tools) > most:
        return f"A session may have at most {most} tools; this file has {len(tools)}."
    for number, tool in enumerate(tools):
        sizes = {
            "description": (len(tool.description), settings.QUOTA_TOOL_DESCRIPTION_CHARS),
            "mock_output": (len(tool.mock_output), settings.QUOTA_MOCK_OUTPUT_CHARS),
            "parameters": (len(json.dumps(tool.parameters)), settings.QUOTA_TOOL_PARAMETERS_CHARS),
        }
        for field, (size, limit) in sizes.items():
            if size > limit:
                return too_long(f"tools[{number}].{field}", limit, f"{size:,}")
    return ""
