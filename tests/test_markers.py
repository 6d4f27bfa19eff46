"""The rule of tests/markers.py: a test's level is the highest of what it reaches, through the
tests' own helpers, whatever they are called."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.liveserver import LiveServer
from tests.markers import LEVELS, Reach
from tests.services import require_redis
from tests.simserver import SimServer

# These helpers name a live server and a child process: a test naming them would be classified
# e2e itself, so this module says what it is.
pytestmark = pytest.mark.unit


def level(function: object) -> str:
    return LEVELS[Reach().of_function(function)]


def pure() -> int:
    return sum(range(3))


def spawn() -> None:
    subprocess.run([sys.executable, "-c", "pass"], check=True)


def through_a_helper() -> None:
    pure()
    spawn()


def serve() -> None:
    LiveServer().start()


def with_redis() -> None:
    require_redis()


def nested() -> None:
    def inner() -> None:
        SimServer().start()

    inner()


def test_in_process_code_is_unit() -> None:
    assert level(pure) == "unit"


def test_a_child_process_or_a_service_is_integration_through_any_helper() -> None:
    assert level(spawn) == "integration"
    assert level(through_a_helper) == "integration"
    assert level(with_redis) == "integration"
    assert level(nested) == "integration"


def test_a_live_server_is_e2e_and_the_highest_level_wins() -> None:
    def both() -> None:
        spawn()
        serve()

    assert level(serve) == "e2e"
    assert level(both) == "e2e"


def test_the_marks_are_on_the_collected_tests(request: pytest.FixtureRequest) -> None:
    marks = {mark.name for mark in request.node.iter_markers()}
    assert marks & set(LEVELS) == {"unit"}


@pytest.fixture
def browser() -> str:
    """Overrides the Playwright ``browser`` of tests/conftest.py, without asking for it."""
    return "a stand-in"


def test_an_overridden_fixture_is_not_reached(request: pytest.FixtureRequest, browser: str) -> None:
    assert browser == "a stand-in"
    assert LEVELS[Reach().of_item(request.node)] == "unit"
