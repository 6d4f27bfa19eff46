"""playground/process_tuning.py: what daphne's process tunes as it loads the application."""

from __future__ import annotations

import gc
import inspect
import pprint
from collections.abc import Iterator
from typing import Any

import autobahn.util
import autobahn.websocket.protocol
import daphne.server  # noqa: F401  (selects txaio's framework, as daphne does)
import pytest
import txaio

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


@pytest.mark.usefixtures("log_level")
def test_debug_formatting_is_done_only_while_debug_is_logged() -> None:
    process_tuning.quiet_autobahn()
    log.set_global_log_level("info")
    assert protocol.pformat([("a", 1)]) == ""
    assert util.hlval("plain") == "plain"  # no colour codes
    log.set_global_log_level("debug")
    assert protocol.pformat([("a", 1)]) == "[('a', 1)]"
    assert "\x1b[" in util.hlval("coloured")


def test_the_collector_leaves_what_was_loaded_alone_and_collects_less_often() -> None:
    threshold = gc.get_threshold()
    try:
        process_tuning.tune_collector()
        assert gc.get_threshold() == (process_tuning.YOUNG_COLLECTION, *threshold[1:])
        assert gc.get_freeze_count() > 0
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
