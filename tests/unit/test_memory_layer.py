"""agents/live/memory_layer.py: the single process's channel layer sweeps what expired at most
once a second, not at every receive (each sweep visits every channel)."""

from __future__ import annotations

import asyncio

import pytest

from agents.live import memory_layer
from agents.live.memory_layer import SweptInMemoryChannelLayer


async def test_a_thousand_receives_sweep_once() -> None:
    layer = SweptInMemoryChannelLayer()
    channels = [f"c{n}" for n in range(1000)]
    for channel in channels:
        await layer.send(channel, {"type": "hello"})
    for channel in channels:
        assert await layer.receive(channel) == {"type": "hello"}
    assert layer.sweeps == 1


async def test_what_expired_is_still_dropped_by_the_next_sweep(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    layer = SweptInMemoryChannelLayer(expiry=0)  # every message expires at once
    layer._clean_expired()  # the first sweep: the next is a second away
    await layer.send("old", {"type": "stale"})
    await layer.group_add("group", "old")
    await asyncio.sleep(0.01)
    layer._clean_expired()
    assert "old" in layer.channels  # within the second: not swept yet
    monkeypatch.setattr(memory_layer, "SWEEP_SECONDS", 0.0)
    layer._clean_expired()
    assert "old" not in layer.channels
    assert "old" not in layer.groups.get("group", {})
    assert layer.sweeps == 2
