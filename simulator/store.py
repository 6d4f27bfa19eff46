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
