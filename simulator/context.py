"""Items as the simulator sees them: validation, canonical form, token counts, the context oracle.

The oracle hashes the canonical form of the full context the simulator reconstructed for a
response (prior items + new input). A client computes the same hash from its own transcript with
:func:`context_hash`, so "what the upstream saw" can be compared with "what we stored".
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from simulator.errors import RequestError

Item = dict[str, Any]

ROLES = ("user", "assistant", "system", "developer")
# Fields that identify or describe an item's delivery rather than its content.
VOLATILE = frozenset({"id", "status", "annotations", "logprobs"})
TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: words and punctuation marks."""
    return len(TOKEN_RE.findall(text))


def normalize_input(raw: object) -> list[Item]:
    """The request's ``input`` as a list of canonical items, or a 400 naming what is wrong."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [_message("user", raw)]
    if not isinstance(raw, list):
        raise RequestError.invalid("input", "Invalid type for 'input': expected a string or array.")
    return [canonical(item, f"input[{i}]") for i, item in enumerate(raw)]


def canonical(item: object, where: str = "input") -> Item:
    if not isinstance(item, Mapping):
        raise RequestError.invalid(where, f"Invalid type for '{where}': expected an object.")
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        return _canonical_message(item, where)
    if kind == "function_call":
        _require(item, where, "call_id", "name", "arguments")
        return {
            "type": "function_call",
            "call_id": item["call_id"],
            "name": item["name"],
            "arguments": item["arguments"],
        }
    if kind == "function_call_output":
        _require(item, where, "call_id", "output")
        return {
            "type": "function_call_output",
            "call_id": item["call_id"],
            "output": item["output"],
        }
    if isinstance(kind, str) and kind:
        return _strip(item)
    raise RequestError.invalid(f"{where}.type", f"Missing or invalid 'type' in '{where}'.")


def _canonical_message(item: Mapping[str, Any], where: str) -> Item:
    role = item.get("role")
    if role not in ROLES:
        raise RequestError.invalid(
            f"{where}.role",
            f"Invalid value for '{where}.role': expected one of {', '.join(ROLES)}.",
        )
    content = item.get("content")
    if isinstance(content, str):
        return _message(role, content)
    if not isinstance(content, list):
        raise RequestError.invalid(
            f"{where}.content", f"Invalid type for '{where}.content': expected a string or array."
        )
    parts = [_canonical_part(part, f"{where}.content[{i}]") for i, part in enumerate(content)]
    return {"type": "message", "role": role, "content": parts}


def _canonical_part(part: object, where: str) -> Item:
    if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
        raise RequestError.invalid(where, f"Invalid content part at '{where}'.")
    if part["type"] in ("input_text", "output_text", "refusal"):
        key = "refusal" if part["type"] == "refusal" else "text"
        if not isinstance(part.get(key), str):
            raise RequestError.invalid(f"{where}.{key}", f"Missing '{key}' at '{where}'.")
        return {"type": part["type"], key: part[key]}
    return _strip(part)


def _message(role: str, text: str) -> Item:
    part = "output_text" if role == "assistant" else "input_text"
    return {"type": "message", "role": role, "content": [{"type": part, "text": text}]}


def _strip(item: Mapping[str, Any]) -> Item:
    return {k: v for k, v in item.items() if k not in VOLATILE and v is not None}


def _require(item: Mapping[str, Any], where: str, *keys: str) -> None:
    for key in keys:
        if not isinstance(item.get(key), str):
            raise RequestError.invalid(
                f"{where}.{key}", f"Missing required parameter: '{where}.{key}'."
            )


def context_hash(items: Iterable[object]) -> str:
    """The oracle's hash of a context: canonical JSON of the canonical items, SHA-256."""
    canon = [canonical(item) for item in items]
    blob = json.dumps(canon, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def item_tokens(item: Item) -> int:
    """Tokens an item adds to the context: its text plus a small per-item framing cost."""
    return 4 + count_tokens(_item_text(item))


def _item_text(item: Item) -> str:
    kind = item.get("type")
    if kind == "message":
        return " ".join(str(p.get("text", p.get("refusal", ""))) for p in item["content"])
    if kind == "function_call":
        return f"{item['name']} {item['arguments']}"
    if kind == "function_call_output":
        output = item["output"]
        return output if isinstance(output, str) else json.dumps(output)
    return json.dumps(item, sort_keys=True)


def unanswered_calls(items: list[Item]) -> list[str]:
    """call_ids of function calls that no later function_call_output answers."""
    answered = {i["call_id"] for i in items if i.get("type") == "function_call_output"}
    return [
        i["call_id"]
        for i in items
        if i.get("type") == "function_call" and i["call_id"] not in answered
    ]


def orphan_outputs(items: list[Item]) -> list[str]:
    """call_ids of function_call_output items with no earlier function call."""
    seen: set[str] = set()
    orphans: list[str] = []
    for item in items:
        if item.get("type") == "function_call":
            seen.add(item["call_id"])
        elif item.get("type") == "function_call_output" and item["call_id"] not in seen:
            orphans.append(item["call_id"])
    return orphans
