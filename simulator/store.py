"""Response records: what a connection's cache and the simulator's own store keep."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from simulator.context import Item


@dataclass
class ResponseRecord:
    """A finished response, with the full context it was generated from."""

    id: str
    lane: str | None
    context: list[Item]  # prior items + this request's input, canonical
    output: list[Item]  # canonical output items
    prefix_tokens: int  # tokens of context + output, reusable by a continuation
    setup_key: str  # instructions and tools; a continuation that changes them re-renders them
    setup_tokens: int
    body: dict[str, Any] = field(default_factory=dict)  # the response object, for retrieve

    @property
    def full(self) -> list[Item]:
        return self.context + self.output


class ResponseStore:
    """Responses created with ``store=true``: what hydrates a miss and what HTTP can retrieve."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._records: OrderedDict[str, ResponseRecord] = OrderedDict()
        self.created_at: dict[str, float] = {}

    def put(self, record: ResponseRecord) -> None:
        self._records[record.id] = record
        self._records.move_to_end(record.id)
        self.created_at[record.id] = time.time()
        while len(self._records) > self.capacity:
            old, _ = self._records.popitem(last=False)
            self.created_at.pop(old, None)

    def get(self, response_id: str) -> ResponseRecord | None:
        return self._records.get(response_id)

    def __len__(self) -> int:
        return len(self._records)


class ConnectionCache:
    """A WebSocket connection's cache: the latest response of each lane (``stream_id``).

    A continuation finds its parent here (a hit), else in the simulator's store when it asks
    for ``store=true`` (hydrated), else it is refused: ``previous_response_not_found``.
    """

    def __init__(self) -> None:
        self.latest: dict[str | None, ResponseRecord] = {}

    def clear(self) -> None:
        self.latest.clear()

    def keep(self, record: ResponseRecord) -> None:
        self.latest[record.lane] = record

    def holds(self, response_id: str) -> bool:
        return any(record.id == response_id for record in self.latest.values())

    def parent(
        self, wanted: str | None, store: ResponseStore | None
    ) -> tuple[ResponseRecord | None, str]:
        """The parent response and how it was found: none, hit or hydrated."""
        if wanted is None:
            return None, "none"
        for cached in self.latest.values():
            if cached.id == wanted:
                return cached, "hit"
        stored = store.get(wanted) if store is not None else None
        if stored is not None:
            return stored, "hydrated"
        raise LookupError(wanted)

    def evict_after_failure(self, lane: str | None, parent_id: str | None) -> None:
        """A failed same-lane continuation evicts its parent; a failed cross-lane fork does not."""
        cached = self.latest.get(lane)
        if cached is not None and cached.id == parent_id:
            del self.latest[lane]
