"""What a daphne process serving the playground tunes once, as it loads the application.

- **autobahn's debug formatting.** autobahn, daphne's WebSocket protocol, builds the arguments
  of its debug log lines before the logger drops them: per connection it pretty-prints its 36
  options (``pprint.pformat``), and per connection and per frame sent it colours names with
  click (``autobahn.util.hl``), ~0.3 ms of the event loop's core per connect (a fifth of a bare
  daphne's), and per frame sent it names its function and values (``hltype``, ``hlval``). They
  get versions that do that work only while txaio logs at debug level.
- **The garbage collector.** Everything loaded by now (Django, the apps, the templates) lives as
  long as the process; ``gc.freeze`` takes it out of every later collection, and young
  collections run every :data:`YOUNG_COLLECTION` allocations instead of 2,000. Measured in a
  storm of 1,000 connects: 225 ms of collections, one full collection of 114 ms, before; 103 ms,
  and no full collection, after. A full collection stops every stream while it runs.
- **Twisted's TCP writes.** Twisted buffers every write and registers the socket for
  writability (an ``epoll_ctl``), sends on the next turn of the loop, then unregisters it (a
  second one): a sixth of the relay's CPU at 6,000 frames a second. A write on a plain TCP
  connection with nothing buffered is tried on the socket at once, as asyncio's own transports
  do; whatever the kernel does not take goes down Twisted's buffered path as before.
"""

from __future__ import annotations

import gc
from typing import Any

import autobahn.util
import autobahn.websocket.protocol
import txaio
from twisted.internet import abstract, tcp

DEBUG_LEVELS = frozenset({"debug", "trace"})
YOUNG_COLLECTION = 10_000  # allocations between young collections (CPython 3.13: 2,000)

# Neither autobahn nor txaio declares these names for a type checker.
_protocol: Any = autobahn.websocket.protocol
_util: Any = autobahn.util
_tcp: Any = tcp
_txaio: Any = txaio
_pformat = _protocol.pformat
_hl = _util.hl
_hltype = _util.hltype
_hlval = _util.hlval


def debugging() -> bool:
    return bool(_txaio.get_global_log_level() in DEBUG_LEVELS)


def pformat(value: Any, *args: Any, **kwargs: Any) -> str:
    return str(_pformat(value, *args, **kwargs)) if debugging() else ""


def hl(text: Any, bold: bool = False, color: str = "yellow") -> str:
    return str(_hl(text, bold=bold, color=color)) if debugging() else str(text)


def hltype(value: Any) -> str:
    return str(_hltype(value)) if debugging() else ""


def hlval(value: Any, color: str = "white", bold: bool = True) -> str:
    return str(_hlval(value, color=color, bold=bold)) if debugging() else ""


def quiet_autobahn() -> None:
    """Idempotent; autobahn's modules look these names up at each call."""
    _protocol.pformat = pformat
    _util.hl = hl
    # The protocol module's own names: every frame sent formats two of them for a debug line.
    _protocol.hltype = hltype
    _protocol.hlval = hlval


def tune_collector() -> None:
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION, older, oldest)
    gc.freeze()


_buffered_write = abstract.FileDescriptor.write


def write_through(connection: Any, data: bytes) -> None:
    """``tcp.Connection.write``: straight to the socket when nothing waits before ``data``."""
    if (
        data
        and not connection.TLS
        and connection.connected
        and not connection.disconnecting
        and not connection._writeDisconnected
        and not connection.dataBuffer
        and not connection._tempDataBuffer
    ):
        sent = connection.writeSomeData(data)
        if isinstance(sent, int) and sent >= 0:  # else lost: the buffered path reports it
            if sent == len(data):
                return
            data = data[sent:]
    _buffered_write(connection, data)


def write_sockets_at_once() -> None:
    """Idempotent."""
    _tcp.Connection.write = write_through


def tune() -> None:
    quiet_autobahn()
    write_sockets_at_once()
    tune_collector()
