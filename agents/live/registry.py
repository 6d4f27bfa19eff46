"""This process's share of the sessions: the runners it holds and the sessions it follows.

Filled by agents/live/sessions.py, read by the mailbox (agents/live/mailbox.py); a runner or a
follower takes itself out through the ``forget`` callback it was given.
"""

from __future__ import annotations

from agents.live.follower import Follower
from agents.live.runner import SessionRunner
from agents.metrics import WARM_SESSIONS

RUNNERS: dict[str, SessionRunner] = {}
FOLLOWED: dict[str, Follower] = {}


def warm_sessions() -> int:
    """The runners whose upstream socket is open, counted when scraped, never on the data path
    (a copy first: a scrape may run on another thread while the loop changes the dict)."""
    return sum(1 for runner in list(RUNNERS.values()) if runner.websocket.connected)


WARM_SESSIONS.set_function(warm_sessions)


def forget_runner(runner: SessionRunner) -> None:
    if RUNNERS.get(runner.session_id) is runner:
        del RUNNERS[runner.session_id]


def forget_follower(follower: Follower) -> None:
    if FOLLOWED.get(follower.session_id) is follower:
        del FOLLOWED[follower.session_id]
