"""Unicode scalar text: what a UTF-8 encoder accepts, so what can be saved, shown and sent on.

JSON's ``"\\ud800"`` escape decodes to a lone surrogate, which no UTF-8 encoder takes: once
stored, the page could not be sent (500) nor the socket's snapshot (1011). Input from people
is refused (playground/jsonsafe.py); the upstream's output, which cannot be refused, has its
surrogates replaced by U+FFFD here.
"""

from __future__ import annotations

import re
from typing import Any

SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(text: str) -> bool:
    """True if ``text`` encodes as UTF-8 (holds no lone surrogate)."""
    return SURROGATE.search(text) is None


def scrub(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings (and keys) replaced by U+FFFD."""
    if isinstance(value, str):
        return SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {scrub(key): scrub(item) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub(item) for item in value]
    return value


def may_hold_surrogates(raw: str | bytes) -> bool:
    """Whether a JSON text might decode to a lone surrogate: only a ``\\uD800``-``\\uDFFF``
    escape can (UTF-8 cannot encode one). Cheap enough to ask of every upstream event."""
    if isinstance(raw, bytes):
        return b"\\ud" in raw or b"\\uD" in raw
    return "\\ud" in raw or "\\uD" in raw
