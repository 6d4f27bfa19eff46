"""What the agent loop needs from whoever runs it: the narrow seam between a run and its session.

The session runner (agents/live/runner.py) is the host in the playground; a test may be one.
The loop publishes events, asks people, marks checkpoints, and uses the host's transports and
stop signal; it never reaches into the runner otherwise.
"""

from __future__ import annotations

from typing import Any, Protocol

from agents.run.events import RunEvent
from agents.run.stop import StopSignal
from agents.run.writes import WriteBehind
from agents.upstream.delta import Item
from agents.upstream.http import HttpUpstream
from agents.upstream.websocket import UpstreamSession


class RunHost(Protocol):
    stop: StopSignal

    @property
    def transport(self) -> UpstreamSession | HttpUpstream:
        """The transport the next step goes over."""
        ...

    def publish(self, event: RunEvent) -> None:
        """Show an event to every tab of the session (and keep it until it is durable)."""

    async def ask(self, call: Item, kind: str) -> str:
        """Wait for a person's answer to a call: its manual output, or an approval."""
        ...

    def checkpoint(self, writes: WriteBehind, base: int) -> None:
        """Once ``writes`` are durable, items below ``base`` are in the database."""

    def fall_back(self, reason: str) -> None:
        """Use HTTP for the rest of the session's life in this process."""

    async def rotate_if_due(
        self, fields: dict[str, Any], context: list[Item], lane: str | None = None
    ) -> bool:
        """Replace the socket at this step boundary if it is old or staff asked; True if it was."""
        ...
