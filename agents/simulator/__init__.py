"""An offline, faithful simulator of the OpenAI Responses API (WebSocket mode and HTTP/SSE)."""

from __future__ import annotations

from agents.simulator.config import PROFILES, CostModel, Profile, SimulatorConfig
from agents.simulator.context import context_hash
from agents.simulator.faults import FaultPlan
from agents.simulator.simulator import Simulator

__all__ = [
    "PROFILES",
    "CostModel",
    "FaultPlan",
    "Profile",
    "Simulator",
    "SimulatorConfig",
    "context_hash",
]
