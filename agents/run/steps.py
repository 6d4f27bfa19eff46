"""What one run of the agent loop holds besides the loop: what it reads before its first step,
what each step streamed so far, and how a step ended."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.models import Item, Session, Step, Tool
from agents.run import transcript
from agents.upstream.delta import Stored


@dataclass
class Partial:
    """An output item as streamed so far (what a stop or a drop keeps)."""

    kind: str
    data: dict[str, Any]
    text: list[str] = field(default_factory=list)

    def kept(self) -> tuple[dict[str, Any], bool]:
        """The item to keep and whether the upstream can be shown it again."""
        text = "".join(self.text)
        if self.kind == "message":
            content = [{"type": "output_text", "text": text}]
            return {"type": "message", "role": "assistant", "content": content}, bool(text)
        # An unfinished function call cannot go back upstream.
        return {**self.data, "arguments": text}, False


@dataclass
class StepOutcome:
    status: str  # completed, incomplete, failed, stopped, interrupted
    message: str = ""
    calls: list[Item] = field(default_factory=list)
    step: Step | None = None


@dataclass(frozen=True)
class Loaded:
    """What a run reads before its first step: its tools, context and stored parent."""

    tools: dict[str, Tool]
    context: list[dict[str, Any]]
    stored: Stored | None


def load(
    session: Session, path: tuple[int, ...] | None, tool_names: tuple[str, ...] | None = None
) -> Loaded:
    """:class:`Loaded`, on the database thread, in one trip (each async ORM call is a trip of
    its own, and a run's first token waits for them)."""
    context, stored = transcript.context_and_stored_now(session, path)
    return Loaded(tools_now(session, tool_names), context, stored)


def tools_now(session: Session, names: tuple[str, ...] | None = None) -> dict[str, Tool]:
    """The session's tools (or those named) by name (synchronous: on the database thread)."""
    tools = Tool.objects.filter(session=session)
    if names is not None:
        tools = tools.filter(name__in=names)
    return {tool.name: tool for tool in tools}
