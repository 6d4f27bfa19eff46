"""The delta rule: what the upstream's connection cache holds, and what the next request sends.

A step sends only its new items with ``previous_response_id`` when the socket's last response
completed with equal fields and the new context extends it; otherwise the full context (client
checklist, docs/client-checklist.md, items 1-12).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Item = dict[str, Any]

# Fields that describe an item's delivery, not its content (never part of the comparison).
VOLATILE = frozenset({"id", "status", "annotations", "logprobs"})


def fingerprint(value: Any) -> str:
    """Canonical JSON: key order, delivery fields and nulls do not count."""
    return json.dumps(_strip(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE and v is not None}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


@dataclass(frozen=True)
class Chain:
    """The upstream's cached state after a completed response on this socket."""

    fields: str  # fingerprint of the request's non-input fields
    context: tuple[str, ...]  # fingerprints of input + output items
    response_id: str
    open_calls: frozenset[str]  # call_ids of function calls the next delta must answer


@dataclass(frozen=True)
class Plan:
    mode: str  # "create" or "delta"
    input: list[Item]
    previous_response_id: str | None


def plan(chain: Chain | None, fields: dict[str, Any], context: Sequence[Item]) -> Plan:
    """Delta only when the socket's last response completed with equal fields and the new
    context extends it; otherwise the full context."""
    if chain is not None and chain.fields == fingerprint(fields):
        size = len(chain.context)
        prefix = tuple(fingerprint(item) for item in context[:size])
        if len(context) >= size and prefix == chain.context:
            delta = list(context[size:])
            answered = {i.get("call_id") for i in delta if i.get("type") == "function_call_output"}
            if chain.open_calls <= answered:
                return Plan("delta", delta, chain.response_id)
    return Plan("create", list(context), None)
