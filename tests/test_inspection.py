"""The inspector's reading of hot state and of a chain's cache misses (pure functions)."""

from __future__ import annotations

from typing import Any

from agents.live.inspection import FrameLog, live_state
from agents.models import Step
from playground.inspector.queries import miss_reason

NOW = 1_000_000.0


def test_a_live_owner_and_tabs_in_two_processes_add_up(settings: Any) -> None:
    settings.LEASE_SECONDS = 10
    hot = {
        "running": "1",
        "state_at": str(NOW - 2),
        "upstream": "connected",
        "transport": "websocket",
        "process": "web-1:42",
        "connected_at": str(NOW - 30),
        "tabs@web-1:42": f"2 0 {NOW - 1:.0f}",
        "tabs@web-2:7": f"1 3 {NOW - 5:.0f}",
    }
    state = live_state(hot, now=NOW)
    assert state.running
    assert (state.upstream, state.transport, state.process) == (
        "connected",
        "websocket",
        "web-1:42",
    )
    assert state.age_s == 30
    assert (state.sockets, state.viewers) == (3, 3)


def test_what_a_dead_process_left_behind_counts_as_closed(settings: Any) -> None:
    settings.LEASE_SECONDS = 10
    stale = f"{NOW - 31:.0f}"  # older than three lease periods
    hot = {
        "running": "1",
        "state_at": stale,
        "upstream": "connected",
        "process": "web-1:42",
        "tabs@web-1:42": f"2 1 {stale}",
        "tabs@web-2:7": f"1 0 {NOW - 3:.0f}",  # a live follower elsewhere still counts
    }
    state = live_state(hot, now=NOW)
    assert (state.upstream, state.process, state.running) == ("closed", "", False)
    assert (state.sockets, state.viewers) == (1, 0)
    assert live_state({}, now=NOW).upstream == "closed"


def test_the_frame_log_keeps_the_latest_frames_without_the_key(settings: Any) -> None:
    settings.OPENAI_API_KEY = "sk-secret-for-the-frame-log"
    log = FrameLog(kept=3)
    for number in range(5):
        log.record("in", "response.output_text.delta", number, b'{"delta": "x"}')
    log.record("out", "response.create", None, '{"note": "sk-secret-for-the-frame-log"}')
    frames = log.since(0)
    assert [f.number for f in frames] == [4, 5, 6]
    assert frames[-1].payload == '{"note": "[redacted]"}'
    assert [f.number for f in log.since(5)] == [6]


def step(mode: str, socket: str, **fields: Any) -> Step:
    return Step(mode=mode, socket=socket, **fields)


def test_each_cache_miss_says_why() -> None:
    warm = step("warm", "fresh")
    assert miss_reason(step("delta", "reused", input_tokens=90, cached_tokens=90), warm) == ""
    # A delta's new items are never cached yet: 40 of 90 cached is a hit on the chain (issue 13:
    # every 97-99 % cached step was labelled a miss). Nothing cached is a miss only when the
    # previous response left a context (a warm-up of an empty session leaves none).
    assert miss_reason(step("delta", "reused", input_tokens=90, cached_tokens=40), warm) == ""
    assert miss_reason(step("delta", "reused", input_tokens=90, cached_tokens=0), warm) == ""
    earlier = step("create", "fresh", input_tokens=50, output_tokens=20)  # it left a context
    assert miss_reason(step("delta", "reused", input_tokens=90, cached_tokens=0), earlier) == (
        "delta, but nothing was cached"
    )
    assert "a new connection" in miss_reason(step("create", "fresh"), warm)
    assert "rotated" in miss_reason(step("create", "rotated"), warm)
    assert "lost the previous response" in miss_reason(step("create", "reused"), warm)
    assert miss_reason(step("create", "http"), warm) == "HTTP: no connection cache"
    assert miss_reason(step("create", "fresh"), None) == "first response: full context"
