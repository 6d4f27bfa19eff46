"""SIGTERM for daphne: stop taking connections, hand everything over, then exit.

Twisted's own SIGTERM handler stops the reactor at once, and daphne then cancels every
connection's application: each tab sees its socket drop, and each run in flight dies with its
process. This handler replaces it once the reactor runs. It closes the process's listening
sockets (with a socket shared by several processes, under supervisord or systemd, only this
process's copy: the others keep accepting), drains (agents/live/drain.py: tabs reconnect
elsewhere, runs finish within SHUTDOWN_GRACE_SECONDS, leases are released), then stops the
reactor. A second SIGTERM, or SIGINT (Ctrl-C), stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

from django.conf import settings
from twisted.internet import interfaces

from agents.live.drain import drain

log = logging.getLogger(__name__)


def reactor() -> Any:
    """daphne's reactor (imported only under daphne: the import would install one)."""
    from twisted.internet import reactor

    return reactor


def install() -> None:
    """Under daphne, take SIGTERM over once the reactor runs (it installs its own handlers as
    it starts). Elsewhere (a test's in-process app) there is no reactor to stop."""
    if "daphne.server" in sys.modules:
        reactor().callWhenRunning(_take_sigterm)


def _take_sigterm() -> None:
    loop = asyncio.get_event_loop()
    loop.add_signal_handler(signal.SIGTERM, _on_sigterm, loop)


def _on_sigterm(loop: asyncio.AbstractEventLoop) -> None:
    loop.remove_signal_handler(signal.SIGTERM)  # back to the default: a second one ends it now
    task = loop.create_task(_stop())
    _STOPPING.add(task)


_STOPPING: set[asyncio.Task[None]] = set()


def listening_ports() -> list[Any]:
    """The reactor's listening sockets (daphne's endpoints, or the one handed to it by fd)."""
    return [r for r in reactor().getReaders() if interfaces.IListeningPort.providedBy(r)]


async def _stop() -> None:
    ports = listening_ports()
    log.info("SIGTERM: no new connections (%d listening sockets closed); draining", len(ports))
    for port in ports:
        port.stopListening()
    try:
        await drain(settings.SHUTDOWN_GRACE_SECONDS)
    except Exception:
        log.exception("Draining failed; stopping anyway")
    reactor().stop()
