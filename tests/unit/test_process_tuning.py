"""playground/process_tuning.py: what daphne's process tunes as it loads the application."""

from __future__ import annotations

import gc
import inspect
import pprint
import socket
from collections.abc import Iterator
from typing import Any

import autobahn.util
import autobahn.websocket.protocol
import daphne.server  # noqa: F401  (selects txaio's framework, as daphne does)
import pytest
import txaio
from twisted.internet import tcp
from twisted.internet.protocol import Protocol

from playground import process_tuning

protocol: Any = autobahn.websocket.protocol  # neither declares these names for a type checker
util: Any = autobahn.util
log: Any = txaio


@pytest.fixture
def log_level() -> Iterator[None]:
    before = log.get_global_log_level()
    yield
    log.set_global_log_level(before)


def test_autobahn_still_formats_its_debug_lines_with_the_names_replaced() -> None:
    """If autobahn stops calling these names, the tuning does nothing: look again."""
    made = inspect.getsource(protocol.WebSocketProtocol._connectionMade)
    assert "pformat(configAttrLog)" in made
    assert "hl(" in inspect.getsource(util.hltype)
    assert process_tuning._pformat is pprint.pformat
    sent = inspect.getsource(protocol.WebSocketProtocol.sendData)
    assert "hltype(self.sendData)" in sent
    assert "hlval(self.peer)" in sent


@pytest.mark.usefixtures("log_level")
def test_debug_formatting_is_done_only_while_debug_is_logged() -> None:
    process_tuning.quiet_autobahn()
    log.set_global_log_level("info")
    assert protocol.pformat([("a", 1)]) == ""
    assert util.hlval("plain") == "plain"  # no colour codes
    assert protocol.hltype(test_debug_formatting_is_done_only_while_debug_is_logged) == ""
    assert protocol.hlval(42) == ""
    log.set_global_log_level("debug")
    assert protocol.pformat([("a", 1)]) == "[('a', 1)]"
    assert "\x1b[" in util.hlval("coloured")
    assert "debug_formatting" in protocol.hltype(
        test_debug_formatting_is_done_only_while_debug_is_logged
    )
    assert "42" in protocol.hlval(42)


def test_the_collector_leaves_what_was_loaded_alone_and_collects_less_often() -> None:
    threshold = gc.get_threshold()
    try:
        process_tuning.tune_collector()
        assert gc.get_threshold() == (process_tuning.YOUNG_COLLECTION, *threshold[1:])
        assert gc.get_freeze_count() > 0
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


class Reactor:
    """What a connection asks of its reactor: here, only whether it asked to write later."""

    def __init__(self) -> None:
        self.writers: list[object] = []

    def addWriter(self, writer: object) -> None:
        if writer not in self.writers:  # as a reactor's: idempotent
            self.writers.append(writer)

    def removeWriter(self, writer: object) -> None:
        if writer in self.writers:
            self.writers.remove(writer)


@pytest.fixture
def connection() -> Iterator[tuple[Any, socket.socket, Reactor]]:
    process_tuning.write_sockets_at_once()
    ours, theirs = socket.socketpair()
    reactor = Reactor()
    made = tcp.Connection(ours, Protocol(), reactor)  # type: ignore[arg-type]
    made.connected = True
    yield made, theirs, reactor
    ours.close()
    theirs.close()


def test_a_write_with_nothing_buffered_goes_to_the_socket_at_once(
    connection: tuple[Any, socket.socket, Reactor],
) -> None:
    made, theirs, reactor = connection
    made.write(b"one frame")
    assert theirs.recv(100) == b"one frame"  # no turn of the loop needed
    assert reactor.writers == []  # nor a registration for writability


def test_what_the_kernel_does_not_take_waits_in_twisteds_buffer_in_order(
    connection: tuple[Any, socket.socket, Reactor],
) -> None:
    made, theirs, reactor = connection
    made.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    big = bytes(range(256)) * 4096  # 1 MiB: more than the socket buffers hold
    made.write(big)
    made.write(b"after")  # something waits before it: buffered behind the rest, not sent
    assert reactor.writers == [made]  # Twisted sends the rest when the socket is writable
    received = bytearray()
    while len(received) < len(big) + len(b"after"):
        received += theirs.recv(1 << 20)
        if made.dataBuffer or made._tempDataBuffer:
            made.doWrite()
    assert bytes(received) == big + b"after"
    assert reactor.writers == []
