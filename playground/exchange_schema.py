"""The export file's JSON Schema (playground/schemas/session-export.schema.json) and its
violations said in words: which field, and what it must be, never the value itself."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import jsonschema

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "session-export.schema.json"


def first_violation(data: Any) -> str | None:
    """The file's first violation of the schema, described; None when it has none."""
    invalid = next(iter(_validator().iter_errors(data)), None)
    return _describe(invalid) if invalid is not None else None


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


TYPES = {
    "object": "an object",
    "array": "a list",
    "string": "text (a string)",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _path(parts: Iterable[str | int]) -> str:
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "the file"


def _describe(error: jsonschema.ValidationError) -> str:
    """A schema violation as "<field path>: what the field must be" (never the value itself,
    which may be megabytes)."""
    rule, value, schema, instance = (
        str(error.validator),
        cast(Any, error.validator_value),
        cast(Any, error.schema),
        cast(Any, error.instance),
    )
    if rule == "type":
        kinds = [value] if isinstance(value, str) else list(value)
        text = "must be " + " or ".join(TYPES.get(kind, kind) for kind in kinds)
    elif rule == "enum":
        text = "must be one of " + ", ".join(json.dumps(choice) for choice in value)
    elif rule == "const":
        text = f"must be {json.dumps(value)}"
    elif rule == "required":
        missing = next(name for name in value if name not in instance)
        text = f"the field {missing!r} is required"
    elif rule == "additionalProperties":
        unknown = sorted(set(instance) - set(schema.get("properties", {})))
        text = f"unknown field {unknown[0]!r}"
    elif (rule == "minLength" and value == 1) or rule == "minProperties":
        text = "must not be empty"
    elif rule in ("minLength", "maxLength"):
        text = f"must have at {'least' if rule == 'minLength' else 'most'} {value} characters"
    elif rule in ("minimum", "maximum"):
        bound = int(value) if float(value).is_integer() else value
        text = f"must be at {'least' if rule == 'minimum' else 'most'} {bound}"
    elif "description" in schema:
        text = f"must be {schema['description']}"
    else:
        text = error.message[:200]
    return f"{_path(error.absolute_path)}: {text}."
