"""Arguments that satisfy a tool's JSON Schema, chosen deterministically from an RNG and hints."""

from __future__ import annotations

import math
import random
from typing import Any

Schema = dict[str, Any]

# Values a property's name calls for; anything else gets a value built from the topic.
NAME_HINTS: dict[str, list[Any]] = {
    "expression": ["12 * (7 + 5)", "2 ** 10 - 24", "(365 * 24) / 8", "17 * 23 + 4"],
    "timezone": ["Europe/Paris", "America/New_York", "Asia/Tokyo", "UTC"],
    "zone": ["Europe/Paris", "America/New_York", "Asia/Tokyo", "UTC"],
    "tz": ["Europe/Paris", "America/New_York", "Asia/Tokyo", "UTC"],
    "url": ["https://example.com/docs", "https://example.org/status"],
    "city": ["Paris", "Lisbon", "Osaka", "Toronto"],
    "location": ["Paris", "Lisbon", "Osaka", "Toronto"],
    "language": ["en", "fr", "de"],
    "unit": ["celsius", "fahrenheit"],
    "email": ["ada@example.com"],
    "date": ["2026-11-24"],
}
TOPIC_NAMES = {"query", "q", "topic", "search", "term", "text", "question", "prompt", "subject"}
KEY_NAMES = {"key", "name", "id", "title", "label"}


def arguments(schema: object, rng: random.Random, topic: str, step: int) -> dict[str, Any]:
    """A JSON object valid for ``schema`` (an object schema, as function tools use)."""
    root = schema if isinstance(schema, dict) else {}
    body = {k: v for k, v in root.items() if k not in ("$defs", "definitions")}
    value = _value(_inline_refs(body, root), rng, "", topic, step)
    return value if isinstance(value, dict) else {}


def _inline_refs(schema: Any, root: Schema, depth: int = 0) -> Any:
    """``schema`` with local ``$ref``s (``#/$defs/Name``, as pydantic writes them) inlined."""
    if isinstance(schema, list):
        return [_inline_refs(s, root, depth) for s in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/") and depth < 8:
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        merged = {**target, **rest} if isinstance(target, dict) else rest
        return _inline_refs(merged, root, depth + 1)
    return {k: _inline_refs(v, root, depth) for k, v in schema.items()}


def _value(schema: Schema, rng: random.Random, name: str, topic: str, step: int) -> Any:
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][(step + rng.randrange(len(schema["enum"]))) % len(schema["enum"])]
    for key in ("anyOf", "oneOf"):
        options = [s for s in schema.get(key, []) if isinstance(s, dict)]
        non_null = [s for s in options if s.get("type") != "null"]
        if non_null:
            return _value(non_null[0], rng, name, topic, step)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    maker = MAKERS.get(kind, _string)
    return maker(schema, rng, name, topic, step)


def _object(schema: Schema, rng: random.Random, name: str, topic: str, step: int) -> Any:
    properties = schema.get("properties") or {}
    required = schema.get("required")
    # Strict schemas list every property as required; loose ones get every property too, since
    # a plausible agent fills in what it knows.
    keys = list(properties) if required is None else list(dict.fromkeys([*required, *properties]))
    return {
        key: _value(properties.get(key) or {}, rng, key, topic, step)
        for key in keys
        if isinstance(properties.get(key, {}), dict)
    }


def _array(schema: Schema, rng: random.Random, name: str, topic: str, step: int) -> Any:
    items = schema.get("items")
    items = items if isinstance(items, dict) else {}
    low = int(schema.get("minItems", 1))
    high = max(low, int(schema.get("maxItems", max(low, 3))))
    count = min(high, max(low, 1 + rng.randrange(3)))
    return [_value(items, rng, name, topic, step + i) for i in range(count)]


def _string(schema: Schema, rng: random.Random, name: str, topic: str, step: int) -> Any:
    lowered = name.lower()
    if lowered in NAME_HINTS:
        text = rng.choice(NAME_HINTS[lowered])
    elif schema.get("format") == "date-time":
        text = "2026-11-24T12:00:00Z"
    elif schema.get("format") == "date":
        text = "2026-11-24"
    elif lowered in KEY_NAMES:
        text = f"{_slug(topic)}-{step}"
    elif lowered in TOPIC_NAMES or not lowered:
        text = f"{topic} (part {step})" if step > 1 else topic
    else:
        text = f"{topic} {lowered.replace('_', ' ')}".strip()
    low, high = int(schema.get("minLength", 0)), int(schema.get("maxLength", 10_000))
    text = text[:high]
    return text + "x" * max(0, low - len(text))


def _integer(schema: Schema, rng: random.Random, name: str, topic: str, step: int) -> Any:
    low_bound, high_bound = _bounds(schema, 1.0, 1.0, 10.0)
    low, high = math.ceil(low_bound), math.floor(high_bound)
    return min(high, max(low, low + (step + rng.randrange(5)) % max(high - low + 1, 1)))


def _number(schema: Schema, rng: random.Random, name: str, topic: str, step: int) -> Any:
    low, high = _bounds(schema, 0.0, 0.0, 100.0)
    value = round(low + (high - low) * rng.random(), 2)
    return value if _fits(schema, value) else (low + high) / 2


def _bounds(schema: Schema, gap: float, low: float, high: float) -> tuple[float, float]:
    """The range a number may take (exclusive bounds moved in by ``gap``), else the defaults."""
    lows = [*_limits(schema, "minimum", 0.0), *_limits(schema, "exclusiveMinimum", gap)]
    highs = [*_limits(schema, "maximum", 0.0), *_limits(schema, "exclusiveMaximum", -gap)]
    found_low = max(lows) if lows else min([low, *highs])
    return found_low, min(highs) if highs else max(found_low, high)


def _limits(schema: Schema, key: str, gap: float) -> list[float]:
    value = schema.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return []
    return [float(value) + gap]


def _fits(schema: Schema, value: float) -> bool:
    return (
        all(value >= v for v in _limits(schema, "minimum", 0.0))
        and all(value <= v for v in _limits(schema, "maximum", 0.0))
        and all(value > v for v in _limits(schema, "exclusiveMinimum", 0.0))
        and all(value < v for v in _limits(schema, "exclusiveMaximum", 0.0))
    )


def _boolean(schema: Schema, rng: random.Random, name: str, topic: str, step: int) -> Any:
    return rng.random() < 0.5


def _null(schema: Schema, rng: random.Random, name: str, topic: str, step: int) -> Any:
    return None


def _slug(text: str) -> str:
    return "-".join(text.lower().split())[:40] or "item"


MAKERS = {
    "object": _object,
    "array": _array,
    "string": _string,
    "integer": _integer,
    "number": _number,
    "boolean": _boolean,
    "null": _null,
}
