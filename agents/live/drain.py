"""A process told to stop (SIGTERM: a deploy, a rolling restart) hands its share over first.

By then it takes no new sockets (playground/shutdown.py closed its listening socket, which the
other processes keep accepting on). Then:

1. Every browser socket is closed with CLOSE_RESTART: the page reconnects at once, to another
   process, and follows its sessions from there (through Redis while this one still runs them).
2. Each runner without a run closes now, releasing its lease: the session's next tab or command
   starts it elsewhere. A runner with a run lets it finish, up to the grace period
   (SHUTDOWN_GRACE_SECONDS), then closes; a run still going then is halted as *interrupted*,
   keeping its partial reply, as if the process had died.
3. Sessions this process followed for tabs are let go.

Nothing new starts meanwhile: no claim of a session, no new run on a runner here.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from contextlib import suppress
from typing import Protocol

from agents.live.registry import FOLLOWED, RUNNERS
from agents.live.runner import SessionRunner
from playground.protocol import CLOSE_RESTART

log = logging.getLogger(__name__)

REASON = "This server is restarting: the session continues on another."


class Closable(Protocol):
    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None: ...


class Draining:
    """Whether this process is draining, and the browser sockets it must close when it does."""

    def __init__(self) -> None:
        self.started = False
        self.sockets: weakref.WeakSet[Closable] = weakref.WeakSet()

    def opened(self, socket: Closable) -> None:
        """A socket accepted; one accepted after the drain began (its connection was queued
        before the listening socket closed) is sent elsewhere at once."""
        if self.started:
            asyncio.get_running_loop().create_task(_close_socket(socket))
        else:
            self.sockets.add(socket)

    def closed(self, socket: Closable) -> None:
        self.sockets.discard(socket)


DRAINING = Draining()


async def drain(grace: float) -> None:
    """Hand over this process's tabs and sessions; returns once none is left here."""
    DRAINING.started = True
    sockets = list(DRAINING.sockets)
    runners = list(RUNNERS.values())
    busy = sum(1 for runner in runners if runner.busy)
    log.info(
        "Draining: %d browser sockets to reconnect elsewhere, %d sessions (%d running, %.0f s "
        "grace)",
        len(sockets),
        len(runners),
        busy,
        grace,
    )
    await asyncio.gather(*(_close_socket(socket) for socket in sockets))
    for runner in runners:
        runner.accepting = False
    deadline = asyncio.get_running_loop().time() + grace
    await asyncio.gather(*(_hand_over(runner, deadline) for runner in runners))
    for follower in list(FOLLOWED.values()):
        follower.stop()
    log.info("Drained: nothing is left to hand over")


async def _close_socket(socket: Closable) -> None:
    with suppress(Exception):
        await socket.close(code=CLOSE_RESTART, reason="This server is restarting.")


async def _hand_over(runner: SessionRunner, deadline: float) -> None:
    """Close ``runner`` once its run, if any, has ended (or the grace period has)."""
    while (task := runner.turn_task) is not None and not runner.closed:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            log.warning("Session %s: its run outlasted the grace period", runner.session_id)
            runner.halt("interrupted")
            break
        try:
            await asyncio.wait_for(asyncio.shield(task), remaining)
        except asyncio.CancelledError:
            if not task.done():  # this drain was cancelled, not the run
                raise
        except Exception:  # the run's own failure, or the timeout: looked at above
            pass
    await runner.close(REASON)
