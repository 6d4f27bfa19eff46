"""What the HTTP and WebSocket handlers need from the simulator that serves them.

A Protocol, so that the handlers (simulator/http.py, simulator/ws.py) do not import the module
that dispatches to them (simulator/simulator.py).
"""

from __future__ import annotations

from typing import Any, Protocol

from simulator.asgi import Scope
from simulator.config import SimulatorConfig
from simulator.errors import RequestError
from simulator.faults import FaultBoard, FaultPlan
from simulator.introspection import Introspection
from simulator.store import ResponseStore


class Host(Protocol):
    config: SimulatorConfig
    store: ResponseStore
    introspection: Introspection
    faults: FaultBoard

    def authorize(self, scope: Scope) -> RequestError | None:
        """Why the request's key is refused, or None."""

    def fault_plan(self, scope: Scope) -> FaultPlan:
        """The faults this request or connection is to meet."""
        ...


def describe(sim: Host) -> dict[str, Any]:
    """Counters for the introspection endpoint and the playground's status page."""
    return {
        "profile": sim.config.profile,
        "seed": sim.config.seed,
        "stored_responses": len(sim.store),
        "open_websockets": sim.introspection.open_websockets(),
        **sim.introspection.counters,
    }
