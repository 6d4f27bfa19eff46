"""Hostile input for the fuzz tests: a seeded generator of what a visitor can throw at us.

Everything comes from one ``random.Random``, so a failing case is reproduced by its seed and
index. The shapes are the ones the security review found dangerous (deep nesting, lone
surrogates, wrong types, huge numbers, NaN, oversize text, binary frames) mixed with valid
frames, so the fuzzer also walks the paths that do work.
"""

from __future__ import annotations

import json
import random
import string
from typing import Any

FORMAT = "agent-playground.session"
ACTIONS = ("send", "stop", "tool_output", "approve", "ack", "", "SEND", "delete", None, 7)
ODD_TEXT = (
    "",
    " ",
    "\x00",
    "\ud800",
    "\udc00 tail",
    "/chat 3 hi",
    "/lookup x",
    "/research 2 tides",
    "<script>alert(1)</script>",
    "{{q}}",
    "💥" * 50,
    "\u202e reversed",
    "a" * 5000,
    "(a+)+$",
    "../../etc/passwd",
    "%2F%00",
)


class Hostile:
    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)

    def choice(self, options: Any) -> Any:
        return self.random.choice(options)

    def text(self) -> str:
        if self.random.random() < 0.5:
            return str(self.choice(ODD_TEXT))
        size = self.random.choice((1, 5, 40, 300))
        alphabet = string.printable + "éλ中\u0301\ufeff"
        return "".join(self.random.choice(alphabet) for _ in range(size))

    def scalar(self) -> Any:
        return self.choice(
            (
                self.text(),
                self.random.randint(-(2**70), 2**70),
                self.random.random() * 1e300,
                True,
                None,
                [],
                {},
            )
        )

    def value(self, depth: int = 0) -> Any:
        roll = self.random.random()
        if depth > 3 or roll < 0.5:
            return self.scalar()
        if roll < 0.75:
            return [self.value(depth + 1) for _ in range(self.random.randint(0, 3))]
        return {self.text()[:20]: self.value(depth + 1) for _ in range(self.random.randint(0, 3))}

    def deep(self) -> str:
        """JSON nested far deeper than any parser's recursion allows."""
        depth = self.random.choice((200, 2_000, 20_000))
        opener, closer = self.random.choice((("[", "]"), ('{"a":', "}")))
        return opener * depth + "1" + closer * depth

    def frame(self) -> str | bytes:
        """One WebSocket frame as htmx's ws extension (or an attacker) might send it."""
        roll = self.random.random()
        if roll < 0.05:
            return bytes(self.random.getrandbits(8) for _ in range(self.random.randint(1, 64)))
        if roll < 0.12:
            return self.deep()
        if roll < 0.2:
            # Not JSON, or JSON with escapes a strict parser must judge (lone surrogates).
            broken = ('{"action":', "nope", '"\\ud800"', "NaN", "[1,2", "\x00", "  ")
            return self.random.choice(broken)
        frame: dict[str, Any] = {"action": self.choice(ACTIONS), "HEADERS": {}}
        for key in self.random.sample(("message", "call_id", "output", "decision", "received"), 3):
            frame[key] = self.value() if self.random.random() < 0.5 else self.text()
        if self.random.random() < 0.3:
            frame["received"] = self.random.randint(-5, 10**12)
        text = json.dumps(frame)
        if self.random.random() < 0.1:  # a lone surrogate, escaped as a client would send it
            text = text.replace("}", ', "message": "x \\udc00 y"}', 1)
        return text

    def form(self, valid: dict[str, str]) -> dict[str, str]:
        """A form post: a valid one with one field made hostile, or every field hostile."""
        if self.random.random() < 0.4:
            data = dict(valid)
            if data and self.random.random() < 0.7:
                name = self.random.choice(sorted(data))
                data[name] = self.text()
            return data
        data = {}
        for name in valid:
            if self.random.random() < 0.8:
                value = self.value()
                data[name] = value if isinstance(value, str) else json.dumps(value)
        if "parameters" in data and self.random.random() < 0.3:
            data["parameters"] = self.schema()
        return data

    def schema(self) -> str:
        roll = self.random.random()
        if roll < 0.3:
            return self.deep()
        if roll < 0.6:
            pattern = self.choice(("^(a+)+$", "(x|x)*y", "[", "(?=a)", "\\1", ".*"))
            return json.dumps(
                {"type": "object", "properties": {"q": {"type": "string", "pattern": pattern}}}
            )
        return json.dumps({"type": "object", "properties": {"q": self.value()}})

    def import_file(self) -> bytes:
        """A session file: mostly shaped like an export, with hostile fields."""
        roll = self.random.random()
        if roll < 0.15:
            return self.deep().encode()
        if roll < 0.25:
            return bytes(self.random.getrandbits(8) for _ in range(self.random.randint(1, 200)))
        if roll < 0.35:
            return (
                f'{{"format": "{FORMAT}", "version": 1, "session": {{"max_steps": NaN}}}}'
            ).encode()
        content = self.value() if self.random.random() < 0.5 else [{"type": "input_text"}]
        item = {
            "position": self.choice((0, 1, -1, 2**40, "0", None)),
            "data": {
                "type": self.choice(("message", "function_call", "function_call_output", 3)),
                "role": self.choice(("user", "assistant", None, 5)),
                "content": content,
                "call_id": self.value(),
                "output": self.value(),
            },
            "status": self.choice(("completed", "interrupted", "", None)),
            "in_context": self.choice((True, False, "yes")),
            "step": self.choice((None, 0, 5, -1, "0")),
        }
        document: dict[str, Any] = {
            "format": self.choice((FORMAT, FORMAT, "other")),
            "version": self.choice((1, 1, 2, "1", None)),
            "session": {"title": self.value(), "model": self.text(), "instructions": self.text()},
            "tools": [{"name": self.text()[:40], "parameters": self.value()}][
                : self.random.randint(0, 1)
            ],
            "steps": [{"duration_ms": self.value(), "mode": self.text()}][
                : self.random.randint(0, 1)
            ],
            "items": [item] * self.random.randint(0, 3),
        }
        text = json.dumps(document)
        if self.random.random() < 0.2:
            text = text.replace('"title": ', '"title": "\\ud800", "t": ', 1)
        return text.encode()
