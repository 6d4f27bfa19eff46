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

from agents.live.local import DRAINING, close_socket
from agents.live.registry import FOLLOWED, RUNNERS
from agents.live.runner import SessionRunner

log = logging.getLogger(__name__)

REASON = "This server is restarting: the session continues on another."


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
    await asyncio.gather(*(close_socket(socket) for socket in sockets))
    deadline = asyncio.get_running_loop().time() + grace
    await asyncio.gather(*(_hand_over(runner, deadline) for runner in runners))
    for follower in list(FOLLOWED.values()):
        follower.stop()
    log.info("Drained: nothing is left to hand over")


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
