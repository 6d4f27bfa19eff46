"""Where a run goes: the positions its items take, and the branch and lane it runs on."""

from __future__ import annotations

from dataclasses import dataclass


class Positions:
    """Where the next items go: a run's own counter, or one shared by a compare's columns,
    which run at once on branches of one session (agents/live/compare.py)."""

    def __init__(self, next_free: int) -> None:
        self.next = next_free

    def take(self, count: int = 1) -> int:
        first = self.next
        self.next += count
        return first


@dataclass(frozen=True)
class Lane:
    """Where a run goes: its branch up to the user's message (None: the session's), its
    upstream lane, and for a compare's column its index and the tools it may call."""

    path: tuple[int, ...] | None = None
    lane: str | None = None
    column: int | None = None
    tools: tuple[str, ...] | None = None  # None: every tool of the session
