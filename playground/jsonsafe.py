"""JSON and text from outside (browser frames, imported files, the upstream), made safe to keep.

Two kinds of input once broke a session for good:

* JSON nested thousands deep: ``json.loads`` raises ``RecursionError``, which escaped every
  handler (a socket closed 1011, an import answered 500); and shallower nesting still overflows
  whatever walks the value later (jsonschema, templates). :func:`loads` measures the nesting
  before parsing and refuses anything deeper than ``settings.MAX_JSON_DEPTH``.
* Text that is not Unicode scalar text: JSON's ``"\\ud800"`` escape decodes to a lone
  surrogate, which no UTF-8 encoder accepts, so the page and the socket could not send it.
  :func:`problem` finds one (and a non-finite number) with its path; where refusing is not an
  option (the upstream's output, rendering) ``agents.scalar_text.scrub`` replaces it by U+FFFD.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from typing import Any

from django.conf import settings

from agents.scalar_text import scrub, valid_text

# A JSON string (escapes included): removed before brackets are counted.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
INVALID_TEXT = (
    "is not valid Unicode (it holds a lone surrogate, such as the JSON escape \\ud800): "
    "remove that character and try again."
)


class JsonError(ValueError):
    """JSON that is refused: ``code`` is ``invalid_json`` or ``too_deep``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def depth(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest (a linear scan, no parsing)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(text: str | bytes, *, constants: bool = False) -> Any:
    """``json.loads``, refusing nesting deeper than ``MAX_JSON_DEPTH``, and NaN and Infinity
    unless ``constants`` (then :func:`problem` names the field that holds one)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonError("invalid_json", f"not UTF-8 ({exc.reason})") from None
    limit = settings.MAX_JSON_DEPTH
    # Cheap first: a text with few brackets cannot nest deeper than it has brackets.
    if text.count("[") + text.count("{") > limit and depth(text) > limit:
        raise JsonError("too_deep", f"arrays and objects nest deeper than {limit} levels")
    try:
        return json.loads(text, parse_constant=None if constants else _no_constant)
    except RecursionError:  # cannot happen below the limit; never let it escape all the same
        raise JsonError("too_deep", f"arrays and objects nest deeper than {limit} levels") from None
    except ValueError as exc:
        raise JsonError("invalid_json", str(exc)) from None


def problem(value: Any, path: str = "") -> str | None:
    """The path of the first string (or key) that is not Unicode text, or number that is not
    finite, in a parsed JSON value, with what is wrong; None if there is none."""
    if isinstance(value, str):
        return None if valid_text(value) else f"{path or 'the file'}: the text {INVALID_TEXT}"
    if isinstance(value, float):
        finite = math.isfinite(value)
        return None if finite else f"{path or 'the file'}: must be a finite number (no NaN)."
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if not valid_text(key):
                return f"{scrub(where)}: a field name {INVALID_TEXT}"
            found = problem(item, where)
            if found:
                return found
    elif isinstance(value, list):
        for number, item in enumerate(value):
            found = problem(item, f"{path}[{number}]")
            if found:
                return found
    return None
