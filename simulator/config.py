"""The simulator's knobs: protocol limits and the cost model, with its two named profiles."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Profile = Literal["zero", "realistic"]
PROFILES: tuple[Profile, ...] = ("zero", "realistic")


@dataclass(frozen=True)
class CostModel:
    """Artificial server-side delays, in milliseconds unless named otherwise.

    A step costs ``turn_ms`` + prefill + ``ttft_ms`` before its first token, then one token every
    1/``tokens_per_s`` seconds. Prefill charges every input token the server has to render again
    at ``prefill_ms_per_uncached_ktok`` and every token reused from the connection cache at
    ``prefill_ms_per_cached_ktok``; that difference is what WebSocket mode saves.
    """

    handshake_ms: float = 0.0  # once per WebSocket upgrade
    http_request_ms: float = 0.0  # once per HTTP request (keep-alive assumed: routing, auth)
    turn_ms: float = 0.0  # once per response.create, on either transport
    ttft_ms: float = 0.0  # model latency to the first token, after prefill
    tokens_per_s: float = 0.0  # 0 streams as fast as the socket takes it
    prefill_ms_per_uncached_ktok: float = 0.0
    prefill_ms_per_cached_ktok: float = 0.0
    hydrate_ms: float = 0.0  # loading a store=true parent that is not in the connection cache
    time_scale: float = 1.0  # multiplies every delay: 0.1 runs the same model ten times faster

    def prefill_ms(self, uncached_tokens: int, cached_tokens: int) -> float:
        return (
            uncached_tokens * self.prefill_ms_per_uncached_ktok
            + cached_tokens * self.prefill_ms_per_cached_ktok
        ) / 1000.0

    async def pause(self, ms: float) -> None:
        """Sleep for ``ms`` model milliseconds (scaled by ``time_scale``)."""
        if ms > 0 and self.time_scale > 0:
            await asyncio.sleep(ms * self.time_scale / 1000.0)

    def scaled(self, time_scale: float) -> CostModel:
        return dataclasses.replace(self, time_scale=time_scale)


# Calibrated so that the 20-step research task over HTTP with the full context each step takes
# about 1.7x as long end to end as the same task over one WebSocket with deltas (~40 % less
# time), the figure OpenAI publishes for 20+ tool-call rollouts. See docs/simulator.md,
# "Calibration".
REALISTIC = CostModel(
    handshake_ms=120.0,
    http_request_ms=25.0,
    turn_ms=40.0,
    ttft_ms=200.0,
    tokens_per_s=100.0,
    prefill_ms_per_uncached_ktok=200.0,
    prefill_ms_per_cached_ktok=6.0,
    hydrate_ms=150.0,
)
ZERO = CostModel()


def cost_model(profile: Profile) -> CostModel:
    return REALISTIC if profile == "realistic" else ZERO


@dataclass(frozen=True)
class SimulatorConfig:
    profile: Profile = "zero"
    seed: int = 0
    api_keys: frozenset[str] = frozenset()  # empty: any non-empty key is accepted
    costs: CostModel = field(default_factory=CostModel)
    max_age_s: float = 3600.0
    age_close_code: int = 1000
    enforce_age_mid_stream: bool = False  # True: the age limit interrupts a running response
    lanes: bool = True  # False: the GA/xAI model, one FIFO per connection, default lane only
    max_in_flight: int = 16
    max_named_lanes: int = 32
    max_frame_bytes: int = 16 * 1024 * 1024  # larger client frames get an error event
    reject_ws_only_fields_on_http: bool = True
    store_capacity: int = 20_000  # stored responses kept (LRU); the oldest are forgotten
    log_capacity: int = 500  # connections whose logs are kept for introspection
    # Benchmarks: log when each delta event was sent (``sends`` in a connection's log).
    record_sends: bool = False
    # The operator's hooks: ``/_sim/`` (logs, oracle, fault API) and faults a client asks for
    # (header, query). Off where the simulator shares a port with visitors (the embedded one).
    introspection: bool = True
    client_faults: bool = True

    @classmethod
    def for_profile(
        cls, profile: str, time_scale: float = 1.0, **overrides: Any
    ) -> SimulatorConfig:
        """The config of a named profile; ``overrides`` set any other field."""
        checked = as_profile(profile)
        return cls(profile=checked, costs=cost_model(checked).scaled(time_scale), **overrides)


def as_profile(name: str) -> Profile:
    for profile in PROFILES:
        if name == profile:
            return profile
    raise ValueError(f"Unknown simulator profile {name!r}; use one of {', '.join(PROFILES)}.")
