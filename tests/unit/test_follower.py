"""A follower: tabs here on a session another process runs. It keeps the owner from idling
out, takes the session over when the lease is free, and resyncs its tabs when the owner
changes (with Redis: without it there is one process and nothing to follow)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from agents.live.follower import Follower
from agents.live.lease import lease_key
from agents.live.local import followed_elsewhere
from agents.live.store import redis_client
from agents.run.events import Resync, RunEvent
from tests.unit.helpers import eventually, eventually_async, settle

pytestmark = pytest.mark.unit


class Tab:
    def __init__(self) -> None:
        self.events: list[RunEvent | Resync] = []

    def deliver(self, event: RunEvent | Resync) -> None:
        self.events.append(event)


class Claims:
    """The claim callback: records each call; ``runner`` is what it returns (None: lost)."""

    def __init__(self, runner: object | None) -> None:
        self.runner = runner
        self.calls: list[str] = []

    async def __call__(self, session_id: str) -> object | None:
        self.calls.append(session_id)
        return self.runner


@pytest.fixture
def fast_beats(settings: Any) -> None:
    settings.LEASE_SECONDS = 0.09  # a beat every 30 ms


async def held_elsewhere(sid: str, holder: str) -> None:
    """Another process holds the lease (for a minute: it renews it, as far as we know)."""
    await redis_client().set(lease_key(sid), holder, px=60_000)


def follow(sid: str, holder: str | None, claims: Claims) -> tuple[Follower, Tab, list[Follower]]:
    forgotten: list[Follower] = []
    follower = Follower(sid, holder, claim=claims, forget=forgotten.append)
    tab = Tab()
    follower.listeners.add(tab)
    return follower, tab, forgotten


@pytest.mark.usefixtures("fast_beats")
async def test_a_free_lease_is_claimed_here_and_the_tabs_resync(
    redis_on: Callable[[], str],
) -> None:
    sid = redis_on()
    claims = Claims(runner=object())
    follower, tab, forgotten = follow(sid, "mailbox-1 dead", claims)  # its owner died

    await eventually(lambda: bool(tab.events), within=2)

    assert claims.calls == [sid]
    assert tab.events == [Resync("This server now runs the session.")]
    assert forgotten == [follower]
    await settle()
    assert follower._task.done()


@pytest.mark.usefixtures("fast_beats")
async def test_a_claim_lost_to_another_process_resyncs_with_the_new_owner(
    redis_on: Callable[[], str],
) -> None:
    sid = redis_on()
    claims = Claims(runner=None)
    follower, tab, forgotten = follow(sid, "mailbox-1 dead", claims)

    await eventually(lambda: bool(tab.events), within=2)

    assert claims.calls == [sid]
    assert tab.events == [Resync("Another server now runs the session.")]
    assert forgotten == [follower]


@pytest.mark.usefixtures("fast_beats")
async def test_a_new_owner_resyncs_the_tabs_without_a_claim(redis_on: Callable[[], str]) -> None:
    sid = redis_on()
    await held_elsewhere(sid, "mailbox-2 new")
    claims = Claims(runner=object())
    _, tab, _ = follow(sid, "mailbox-1 old", claims)

    await eventually(lambda: bool(tab.events), within=2)

    assert claims.calls == []
    assert tab.events == [Resync("Another server now runs the session.")]


@pytest.mark.usefixtures("fast_beats")
async def test_while_the_owner_lives_the_follower_keeps_it_from_idling_out(
    redis_on: Callable[[], str],
) -> None:
    sid = redis_on()
    await held_elsewhere(sid, "mailbox-1 alive")
    claims = Claims(runner=object())
    follower, tab, forgotten = follow(sid, "mailbox-1 alive", claims)
    assert not await followed_elsewhere(sid)

    # The owner's runner sees tabs elsewhere, beat after beat.
    await eventually_async(lambda: followed_elsewhere(sid), within=2)
    await asyncio.sleep(0.12)
    assert (claims.calls, tab.events, forgotten) == ([], [], [])
    assert not follower._task.done()

    follower.stop()
    assert forgotten == [follower]


async def test_the_owner_saying_it_left_is_acted_on_at_once_not_at_the_next_beat(
    redis_on: Callable[[], str], settings: Any
) -> None:
    """A restarting owner releases its lease and says so (wire.OwnerLeft, delivered to the
    follower's tabs' sockets, which wake it): the session is claimed here now, not a third of
    LEASE_SECONDS later."""
    settings.LEASE_SECONDS = 60.0  # a beat every 20 s: only a wake can explain a claim
    sid = redis_on()
    await held_elsewhere(sid, "mailbox-1 live")
    claims = Claims(runner=object())
    follower, tab, _ = follow(sid, "mailbox-1 live", claims)
    await settle()
    assert claims.calls == []

    await redis_client().delete(lease_key(sid))  # the owner released it, then:
    follower.wake()
    await eventually(lambda: bool(tab.events), within=2)

    assert claims.calls == [sid]
    assert tab.events == [Resync("This server now runs the session.")]
