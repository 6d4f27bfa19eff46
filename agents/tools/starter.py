"""The tools a session created on the page starts with: the built-ins that need no setup.

Only the page's "New session" (playground/views.py) adds them, so that the home page's scenarios
make tool calls on the first try; a session made any other way (an import, a test, the
benchmark's own) starts with the tools it is given.
"""

from __future__ import annotations

import copy

from agents.models import Session, Tool
from agents.tools.builtins import BUILTINS

# The tools panel's built-in presets (playground/tool_presets.py); not http_get, which answers
# nothing until the operator allows a host.
STARTER = ("calculator", "current_time", "notes")


def starter_tools(session: Session, most: int | None = None) -> list[Tool]:
    """Unsaved tools for ``session``, as the preset buttons would add them (at most ``most``)."""
    names = STARTER if most is None else STARTER[: max(most, 0)]
    return [
        Tool(
            session=session,
            name=name,
            description=BUILTINS[name].description,
            parameters=copy.deepcopy(BUILTINS[name].parameters),
            mode=Tool.Mode.BUILTIN,
            builtin=name,
        )
        for name in names
    ]
