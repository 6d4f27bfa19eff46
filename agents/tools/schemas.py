"""Tool schemas and arguments, checked without ever freezing the process.

jsonschema matches ``pattern`` and ``patternProperties`` with Python's backtracking ``re``: a
pattern such as ``^(a+)+$`` takes seconds per extra character of the argument (ReDoS). Here every
pattern is matched with RE2, in linear time, and a pattern RE2 cannot compile (backreferences,
lookaround) is refused when the tool is saved. A schema or arguments nested deeper than
``TOOL_SCHEMA_MAX_DEPTH`` are refused before jsonschema recurses into them (RecursionError), and
every keyword checks a deadline, since ``anyOf`` over ``$ref`` can still make validation
exponential.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any

import re2
from django.conf import settings
from jsonschema import Draft202012Validator, ValidationError, validators

Keyword = Callable[[Any, Any, Any, dict[str, Any]], Iterable[ValidationError] | None]

SIZE_KEYWORDS = frozenset({"minLength", "minItems", "minProperties", "minContains"})
# Keywords whose values are data, not schemas: a "pattern" key inside them is not a pattern.
DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})
# Keywords whose values map names to schemas: a key there is a name, not a keyword.
NAMED_SCHEMAS = frozenset({"properties", "patternProperties", "$defs", "definitions"})
MAX_ERRORS = 100
_DEADLINE: ContextVar[float] = ContextVar("tool_schema_deadline", default=float("inf"))


class TooSlow(Exception):
    """Validation ran past its deadline."""


def _re2_options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is told to whoever saved it, not to stderr
    return options


OPTIONS = _re2_options()


@functools.lru_cache(maxsize=512)
def compiled(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (cached); raises ``re2.error`` if RE2 cannot match it."""
    return re2.compile(pattern, OPTIONS)


def too_deep(document: object, limit: int) -> bool:
    """Whether ``document`` nests objects and arrays more than ``limit`` levels (no recursion)."""
    stack: list[tuple[object, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        children: Iterable[object] = ()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def depth_message(what: str) -> str:
    limit = settings.TOOL_SCHEMA_MAX_DEPTH
    return f"{what} nested too deeply: tool schemas and arguments may have at most {limit} levels."


def _schema_nodes(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every subschema (a JSON object) with its path, skipping data such as ``enum`` values."""
    stack: list[tuple[str, object, bool]] = [("", schema, False)]
    while stack:
        path, node, named = stack.pop()
        if isinstance(node, list):
            stack.extend((f"{path}/{i}".lstrip("/"), child, False) for i, child in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        if not named:
            yield path, node
        for key, child in node.items():
            if named or key not in DATA_KEYWORDS:
                stack.append(
                    (f"{path}/{key}".lstrip("/"), child, not named and key in NAMED_SCHEMAS)
                )


def _pattern_problem(pattern: str, where: str) -> str | None:
    try:
        compiled(pattern)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        return (
            f"The pattern {pattern!r} at {where} cannot be used: patterns are matched with RE2 "
            f"here, in linear time, which has no backreferences or lookaround ({reason})."
        )
    return None


def safety_problem(schema: dict[str, Any], *, sizes: bool = True) -> str | None:
    """Why checking arguments against ``schema`` could hang this process, or None.

    ``sizes`` also refuses minimum sizes over ``TOOL_SCHEMA_MAX_REQUIRED_SIZE`` (what a model,
    or the simulator, would have to write).
    """
    if too_deep(schema, settings.TOOL_SCHEMA_MAX_DEPTH):
        return depth_message("The parameters are")
    limit = settings.TOOL_SCHEMA_MAX_REQUIRED_SIZE
    unevaluated = pattern_properties = False
    for path, node in _schema_nodes(schema):
        if isinstance(node.get("pattern"), str):
            problem = _pattern_problem(node["pattern"], f"{path}/pattern".lstrip("/"))
            if problem:
                return problem
        if isinstance(node.get("patternProperties"), dict):
            pattern_properties = True
            here = f"{path}/patternProperties".lstrip("/")
            for pattern in node["patternProperties"]:
                if problem := _pattern_problem(pattern, here):
                    return problem
        unevaluated = unevaluated or "unevaluatedProperties" in node
        for keyword in SIZE_KEYWORDS if sizes else ():
            value = node.get(keyword)
            if isinstance(value, int) and not isinstance(value, bool) and value > limit:
                return (
                    f"{keyword} of {value} at {f'{path}/{keyword}'.lstrip('/')} is too large: "
                    f"a tool schema may require at most {limit} (characters, items or properties)."
                )
    if unevaluated and pattern_properties:
        return (
            "unevaluatedProperties together with patternProperties cannot be checked safely "
            "here; use additionalProperties instead."
        )
    return None


# -- the validator ---------------------------------------------------------------------------------


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Any:
    if validator.is_type(instance, "string") and not compiled(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: dict[str, Any]
) -> Any:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        regex = compiled(pattern)
        for key, value in instance.items():
            if regex.search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


_ADDITIONAL = Draft202012Validator.VALIDATORS["additionalProperties"]


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: dict[str, Any]
) -> Any:
    """jsonschema's own check, with the keys a pattern matches (by RE2) taken out first."""
    patterns = schema.get("patternProperties")
    if patterns and validator.is_type(instance, "object"):
        regexes = [compiled(pattern) for pattern in patterns]
        instance = {k: v for k, v in instance.items() if not any(r.search(k) for r in regexes)}
        schema = {k: v for k, v in schema.items() if k != "patternProperties"}
    return _ADDITIONAL(validator, additional, instance, schema)


def _bounded(keyword: Keyword) -> Keyword:
    def check(validator: Any, value: Any, instance: Any, schema: dict[str, Any]) -> Any:
        if time.monotonic() > _DEADLINE.get():
            raise TooSlow
        return keyword(validator, value, instance, schema)

    return check


_KEYWORDS: dict[str, Keyword] = {
    **Draft202012Validator.VALIDATORS,
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
}
SafeValidator: Any = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, {name: _bounded(check) for name, check in _KEYWORDS.items()}
)


def one_dialect(node: Any, named: bool = False) -> Any:
    """``node`` without ``$schema``: jsonschema switches to that dialect's stock validator
    (Python's ``re``, no deadline) at any subschema that names one, or at a ``$ref`` to it.
    Recursive: call it on schemas within ``TOOL_SCHEMA_MAX_DEPTH`` only."""
    if isinstance(node, list):
        return [one_dialect(child) for child in node]
    if not isinstance(node, dict):
        return node
    return {
        key: child
        if not named and key in DATA_KEYWORDS
        else one_dialect(child, not named and key in NAMED_SCHEMAS)
        for key, child in node.items()
        if named or key != "$schema"
    }


def errors(schema: dict[str, Any], instance: object) -> list[ValidationError]:
    """How ``instance`` breaks ``schema`` (at most MAX_ERRORS, by message); ``TooSlow`` past
    ``TOOL_VALIDATION_TIMEOUT_SECONDS``. Call ``safety_problem`` first."""
    token = _DEADLINE.set(time.monotonic() + settings.TOOL_VALIDATION_TIMEOUT_SECONDS)
    try:
        validator = SafeValidator(one_dialect(schema))
        found = itertools.islice(validator.iter_errors(instance), MAX_ERRORS)
        return sorted(found, key=lambda error: error.message)
    finally:
        _DEADLINE.reset(token)
