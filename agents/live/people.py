"""People in the loop: function calls that wait for a person's manual output or approval.

Any tab of the session, on any process, may answer; the first answer wins and the call leaves
the waiting list whatever happens to the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from agents.run.events import CallResolved, CallWaiting, RunEvent
from agents.upstream.delta import Item


@dataclass
class PendingCall:
    """A function call waiting for a person: its manual output or an approval."""

    call: Item
    kind: str
    answer: asyncio.Future[str]

    @property
    def event(self) -> CallWaiting:
        data = self.call
        return CallWaiting(data["call_id"], data["name"], data.get("arguments", ""), self.kind)


class WaitingCalls:
    def __init__(self, publish: Callable[[RunEvent], None]) -> None:
        self.publish = publish
        self.pending: dict[str, PendingCall] = {}

    def __len__(self) -> int:
        return len(self.pending)

    async def ask(self, call: Item, kind: str) -> str:
        """Wait until a person answers ``call`` from any tab (manual output or approval)."""
        pending = PendingCall(call, kind, asyncio.get_running_loop().create_future())
        self.pending[call["call_id"]] = pending
        self.publish(pending.event)
        try:
            return await pending.answer
        finally:
            del self.pending[call["call_id"]]
            self.publish(CallResolved(call["call_id"]))

    def answer(self, call_id: str, kind: str, value: str) -> str | None:
        """Resolve a waiting call; the reason it cannot be, otherwise None."""
        pending = self.pending.get(call_id)
        if pending is None or pending.answer.done():
            return "That call is not waiting for an answer (any more)."
        if pending.kind != kind:
            return f"That call waits for {pending.kind}, not {kind}."
        if kind == "output" and len(value) > settings.TOOL_OUTPUT_LIMIT:
            return f"The output is over the limit of {settings.TOOL_OUTPUT_LIMIT} characters."
        pending.answer.set_result(value)
        return None

    def cancel_all(self) -> None:
        """The run ended: nobody waits for these answers any more."""
        for pending in self.pending.values():
            pending.answer.cancel()
