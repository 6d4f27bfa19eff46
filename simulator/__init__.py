"""An offline, faithful simulator of the OpenAI Responses API (WebSocket mode and HTTP/SSE)."""

from __future__ import annotations

from simulator.config import PROFILES, CostModel, Profile, SimulatorConfig
from simulator.context import context_hash
from simulator.faults import FaultPlan
from simulator.simulator import Simulator

__all__ = [
    "PROFILES",
    "CostModel",
    "FaultPlan",
    "Profile",
    "Simulator",
    "SimulatorConfig",
    "context_hash",
]
