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
    """The upstream's cached state after a completed response on this socket.

    It also keeps the items it was computed from: a step's context holds the same item objects
    as the step before (the loop appends, never edits, an item), and a later turn's, loaded
    again, equal ones; such an item needs no fingerprint. Only new items are fingerprinted: no
    step pays for the whole context again.
    """

    fields: str  # fingerprint of the request's non-input fields
    context: tuple[str, ...]  # fingerprints of input + output items
    response_id: str
    open_calls: frozenset[str]  # call_ids of function calls the next delta must answer
    items: tuple[Item, ...] = ()  # the items themselves (empty: compare by fingerprint only)
    fields_object: dict[str, Any] | None = None

    def same_fields(self, fields: dict[str, Any]) -> bool:
        return fields is self.fields_object or self.fields == fingerprint(fields)

    def extended_by(self, context: Sequence[Item]) -> bool:
        """Whether ``context`` starts with this chain's items."""
        size = len(self.context)
        if len(context) < size:
            return False
        known = self.items if len(self.items) == size else (None,) * size
        # The same object, or an equal one (a later turn loads the same items from the
        # database: ``==`` compares them in C), before a canonical JSON of the item.
        return all(
            item is mine or item == mine or fingerprint(item) == printed
            for item, mine, printed in zip(context, known, self.context, strict=False)
        )

    def then(
        self,
        fields: dict[str, Any],
        context: Sequence[Item],
        response_id: str,
        calls: frozenset[str],
    ) -> Chain:
        """The chain after a response to ``context`` (which extends this one) with ``fields``."""
        size = len(self.context)
        added = tuple(fingerprint(item) for item in context[size:])
        return Chain(
            self.fields if self.same_fields(fields) else fingerprint(fields),
            self.context + added,
            response_id,
            calls,
            tuple(context),
            fields,
        )


def new_chain(
    fields: dict[str, Any], context: Sequence[Item], response_id: str, calls: frozenset[str]
) -> Chain:
    """The chain after a response to the full ``context``."""
    prints = tuple(fingerprint(item) for item in context)
    return Chain(fingerprint(fields), prints, response_id, calls, tuple(context), fields)


@dataclass(frozen=True)
class Stored:
    """A response stored upstream (``store=true``) on the branch being run: the upstream finds
    it by id on any connection, and it holds the branch's first ``items`` context items."""

    response_id: str
    items: int


# How a request finds its parent, cheapest first: its own lane's latest response, another
# lane's latest (a fork onto a new lane, on the same socket), a stored response, or none.
ROUTES = ("delta", "lane", "stored", "full")


@dataclass(frozen=True)
class Plan:
    mode: str  # "create" or "delta"
    input: list[Item]
    previous_response_id: str | None
    route: str = ""  # one of ROUTES
    extends: Chain | None = None  # the chain a delta continues


def plan(chain: Chain | None, fields: dict[str, Any], context: Sequence[Item]) -> Plan:
    """Delta only when the socket's last response completed with equal fields and the new
    context extends it; otherwise the full context."""
    if chain is not None and chain.same_fields(fields) and chain.extended_by(context):
        delta = list(context[len(chain.context) :])
        answered = {i.get("call_id") for i in delta if i.get("type") == "function_call_output"}
        if chain.open_calls <= answered:
            return Plan("delta", delta, chain.response_id, extends=chain)
    return Plan("create", list(context), None)


def route(
    chains: dict[str | None, Chain],
    lane: str | None,
    fields: dict[str, Any],
    context: Sequence[Item],
    stored: Stored | None = None,
) -> Plan:
    """The cheapest way to send ``context`` on ``lane`` (docs/branches.md): the delta rule on
    the lane's own chain, else on the longest other lane's, else from a stored response of the
    branch, else the full context. Only routes the upstream is known to hold are taken, so a
    branch never meets a cache miss it could have foreseen."""
    own = chains.get(lane)
    if own is not None:
        chosen = plan(own, fields, context)
        if chosen.mode == "delta":
            return Plan("delta", chosen.input, chosen.previous_response_id, "delta", own)
    forks = [plan(chain, fields, context) for name, chain in chains.items() if name != lane]
    forks = [chosen for chosen in forks if chosen.mode == "delta"]
    if forks:
        best = min(forks, key=lambda chosen: len(chosen.input))
        return Plan("delta", best.input, best.previous_response_id, "lane", best.extends)
    if stored is not None and fields.get("store") and 0 < stored.items <= len(context):
        return Plan("delta", list(context[stored.items :]), stored.response_id, "stored")
    return Plan("create", list(context), None, "full")
