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


# Whatever a schema asks, the simulated model writes bounded arguments: a schema from anyone
# (minLength 10,000,000, minItems nested three deep, a $ref that refers to itself six times)
# must not make it write megabytes or recurse without end. Past the bounds it writes less than
# asked, and the tool's own check tells the model so, as a real model's mistake would be told.
MAX_DEPTH = 32  # levels of values; deeper ones are left empty
MAX_STRING = 10_000  # characters in one string
MAX_ITEMS = 100  # items in one array
BUDGET = 100_000  # characters (roughly) in one call's arguments
MAX_INLINED = 10_000  # schema nodes that inlining $refs may produce
MAX_REF_DEPTH = 8


def arguments(schema: object, rng: random.Random, topic: str, step: int) -> dict[str, Any]:
    """A JSON object valid for ``schema`` (an object schema, as function tools use)."""
    root = schema if isinstance(schema, dict) else {}
    body = {k: v for k, v in root.items() if k not in ("$defs", "definitions")}
    inlined = _Inliner(root).inline(body, 0, 0)
    value = _Writer(rng, topic).value(inlined if isinstance(inlined, dict) else {}, "", step, 0)
    return value if isinstance(value, dict) else {}


class _Inliner:
    """The schema with local ``$ref``s (``#/$defs/Name``, as pydantic writes them) inlined, up to
    ``MAX_REF_DEPTH`` refs deep and ``MAX_INLINED`` nodes in all (refs past them become ``{}``)."""

    def __init__(self, root: Schema) -> None:
        self.root = root
        self.nodes = 0

    def inline(self, schema: Any, refs: int, level: int) -> Any:
        self.nodes += 1
        if not isinstance(schema, dict | list):
            return schema
        if level > 2 * MAX_DEPTH:
            return {}
        if isinstance(schema, list):
            return [self.inline(s, refs, level + 1) for s in schema]
        ref = schema.get("$ref")
        if isinstance(ref, str):
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            if not ref.startswith("#/") or refs >= MAX_REF_DEPTH or self.nodes > MAX_INLINED:
                return self.inline(rest, refs, level)
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            merged = {**target, **rest} if isinstance(target, dict) else rest
            return self.inline(merged, refs + 1, level)
        return {k: self.inline(v, refs, level + 1) for k, v in schema.items()}


class _Writer:
    """Values for schemas, within ``BUDGET`` characters and ``MAX_DEPTH`` levels."""

    def __init__(self, rng: random.Random, topic: str) -> None:
        self.rng = rng
        self.topic = topic
        self.budget = BUDGET

    def value(self, schema: Schema, name: str, step: int, depth: int) -> Any:
        self.budget -= 1
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            enum = schema["enum"]
            return enum[(step + self.rng.randrange(len(enum))) % len(enum)]
        for key in ("anyOf", "oneOf"):
            options = [s for s in schema.get(key, []) if isinstance(s, dict)]
            non_null = [s for s in options if s.get("type") != "null"]
            if non_null:
                return self.value(non_null[0], name, step, depth)
        kind = schema.get("type", "object" if "properties" in schema else "string")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if not isinstance(kind, str):
            kind = "string"
        if depth >= MAX_DEPTH or self.budget <= 0:
            return EMPTY.get(kind, "")
        if kind == "object":
            return self.object(schema, step, depth)
        if kind == "array":
            return self.array(schema, name, step, depth)
        if kind in MAKERS:
            return MAKERS[kind](schema, self.rng, name, self.topic, step)
        return self.string(schema, name, step)

    def object(self, schema: Schema, step: int, depth: int) -> Any:
        properties = schema.get("properties") or {}
        required = schema.get("required")
        # Strict schemas list every property as required; loose ones get every property too,
        # since a plausible agent fills in what it knows.
        keys = (
            list(properties) if required is None else list(dict.fromkeys([*required, *properties]))
        )
        return {
            key: self.value(properties.get(key) or {}, key, step, depth + 1)
            for key in keys
            if isinstance(key, str) and isinstance(properties.get(key, {}), dict)
        }

    def array(self, schema: Schema, name: str, step: int, depth: int) -> Any:
        items = schema.get("items")
        items = items if isinstance(items, dict) else {}
        low = min(_count(schema, "minItems", 1), MAX_ITEMS)
        high = max(low, min(_count(schema, "maxItems", max(low, 3)), MAX_ITEMS))
        count = min(high, max(low, 1 + self.rng.randrange(3)))
        values = []
        for i in range(count):
            if self.budget <= 0:
                break
            values.append(self.value(items, name, step + i, depth + 1))
        return values

    def string(self, schema: Schema, name: str, step: int) -> Any:
        text = _text(schema, self.rng, name, self.topic, step)
        low = min(_count(schema, "minLength", 0), MAX_STRING, max(self.budget, 0))
        high = _count(schema, "maxLength", MAX_STRING)
        text = text[:high] + "x" * max(0, low - len(text[:high]))
        self.budget -= len(text)
        return text


EMPTY: dict[str, Any] = {"object": {}, "array": [], "string": "", "null": None}


def _count(schema: Schema, key: str, default: int) -> int:
    value = schema.get(key, default)
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default
    )


def _text(schema: Schema, rng: random.Random, name: str, topic: str, step: int) -> str:
    lowered = name.lower()
    if lowered in NAME_HINTS:
        return str(rng.choice(NAME_HINTS[lowered]))
    if schema.get("format") == "date-time":
        return "2026-11-24T12:00:00Z"
    if schema.get("format") == "date":
        return "2026-11-24"
    if lowered in KEY_NAMES:
        return f"{_slug(topic)}-{step}"
    if lowered in TOPIC_NAMES or not lowered:
        return f"{topic} (part {step})" if step > 1 else topic
    return f"{topic} {lowered.replace('_', ' ')}".strip()


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
    try:
        bound = float(value) + gap
    except OverflowError:  # an integer past any float
        return []
    return [bound] if math.isfinite(bound) else []


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
    "integer": _integer,
    "number": _number,
    "boolean": _boolean,
    "null": _null,
}
