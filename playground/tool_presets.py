"""Tools one click away in the tools panel: the built-ins, and a mock weather tool.

Each preset is what the "Add a tool" form would post (its ``new-`` prefixed fields), so a preset
goes through the same form, the same checks and the same limits as a tool typed in by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from agents.tools.builtins import BUILTINS

WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "e.g. Lisbon"}},
    "required": ["city"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Preset:
    label: str
    fields: dict[str, str]

    @property
    def values(self) -> str:
        """The form's fields as JSON, for the button's ``hx-vals``."""
        return json.dumps({f"new-{name}": value for name, value in self.fields.items()})


def _builtin(name: str, label: str) -> Preset:
    return Preset(label, {"name": name, "mode": "builtin", "builtin": name})


PRESETS = [
    _builtin("calculator", "Calculator"),
    _builtin("current_time", "Current time"),
    _builtin("notes", "Notes"),
    Preset(
        "Mock weather",
        {
            "name": "get_weather",
            "description": "The weather in a city now (a mock: always the same answer).",
            "mode": "mock",
            "parameters": json.dumps(WEATHER_PARAMETERS),
            "mock_output": '{"city": "{{city}}", "sky": "sunny", "temp_c": 21}',
        },
    ),
]
assert all(p.fields["builtin"] in BUILTINS for p in PRESETS if p.fields["mode"] == "builtin")
