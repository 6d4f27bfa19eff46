"""Marks every test ``unit``, ``integration`` or ``e2e`` by what it reaches (``make test-fast``
runs ``-m "unit and not slow"``), and ``database`` if it uses the test database (``make
pytest``'s PostgreSQL pass runs ``-m "database and not e2e"``).

The rule, decided at collection from the code, never by hand:

- **e2e**: the test reaches a real browser (Playwright: the ``browser`` fixture) or a live
  playground in a subprocess (``tests.liveserver.LiveServer``, ``tests.cluster.Cluster``).
- **integration**: else, it reaches any other child process (the ``sim_server``/``start_sim``
  simulators, ``tests.services.PrivateRedis``, nginx: anything calling ``subprocess``) or a
  real service (``require_redis``, ``require_postgres``).
- **unit**: the rest: in process only (the ASGI app, the in-process simulator, SQLite in memory).

"Reaches" means: named by the test function, by one of its fixtures, or by a function or class
of the tests' own code (``tests``, ``devtools``) that those name, followed name by name down to
the objects ``targets()`` lists. A test that carries one of the three marks itself keeps it
(``tests/unit/`` marks its modules ``unit``). ``pytest --collect-only -q -m e2e`` (or
``integration``, ``unit``) lists what a mark selects.

``slow``: the few tests listed in ``SLOW``, with their measured seconds (see there).

``database``: the ``django_db`` mark or a database fixture of pytest-django (``db``, ...).
With ``DATABASE_URL=postgres://...`` (the PostgreSQL pass) and no server answering, these are
skipped, or under ``CI=true`` the run fails at once, as ``tests/services.py`` does for every
service. e2e tests start their own servers on their own SQLite files whatever the pass.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import types
from collections.abc import Iterator
from typing import Any

import pytest

LEVELS = ("unit", "integration", "e2e")
# Where "reaches" follows names: the tests' own helpers (the app and libraries count as in process).
OWN_CODE = ("tests.", "devtools.")
# Attribute names that start a child process wherever they are looked up (asyncio's).
SUBPROCESS_NAMES = frozenset({"create_subprocess_exec", "create_subprocess_shell"})
# pytest-django's fixtures that open the test database (besides the ``django_db`` mark).
DATABASE_FIXTURES = frozenset({"db", "transactional_db", "django_db_serialized_rollback"})
# The tests that take over half a minute alone (seconds measured on 2 busy cores, issue 12):
# marked ``slow`` (``make test-fast`` leaves them out), run first, longest first (under xdist the
# other workers take the rest meanwhile, instead of waiting for one of these at the end), and
# given SLOW_TIMEOUT seconds unless they set their own (the suite's 120 s is too short for the
# fuzzer on a busy machine).
SLOW = {
    "tests/test_bench.py::test_the_smoke_run_measures_every_scenario_and_prints_the_table": 45,
    "tests/test_fuzz.py::test_random_form_posts_and_imports_never_fail_and_touch_only_"
    "the_callers_sessions": 40,
    "tests/test_agents_sdk.py::test_an_agent_with_a_function_tool_runs_to_completion_over_"
    "one_websocket": 30,
}
SLOW_TIMEOUT = 300


def targets() -> dict[int, str]:
    """id() of each object that decides a level -> that level."""
    from playwright.async_api import async_playwright
    from playwright.sync_api import sync_playwright

    from tests import services
    from tests.cluster import Cluster
    from tests.liveserver import LiveServer
    from tests.simserver import SimServer

    e2e: list[object] = [sync_playwright, async_playwright, LiveServer, Cluster]
    integration: list[object] = [subprocess, SimServer, services.PrivateRedis]
    integration += [services.require_redis, services.require_postgres, services.require_nginx]
    return {id(o): "e2e" for o in e2e} | {id(o): "integration" for o in integration}


class Reach:
    """The level of what a function reaches, following names through OWN_CODE."""

    def __init__(self) -> None:
        self.targets = targets()
        self.seen: dict[int, int] = {}  # id(code or class) -> level index

    def of_function(self, function: Any) -> int:
        function = inspect.unwrap(function)
        code = getattr(function, "__code__", None)
        if code is None:
            return 0
        return self.of_code(code, function.__globals__)

    def of_code(self, code: types.CodeType, namespace: dict[str, Any]) -> int:
        if id(code) in self.seen:
            return self.seen[id(code)]
        self.seen[id(code)] = 0  # a recursive helper reaches nothing more through itself
        level = 2 if SUBPROCESS_NAMES & set(code.co_names) else 0
        for name in code.co_names:
            if name in namespace:
                level = max(level, self.of_object(namespace[name]))
        for constant in code.co_consts:  # nested functions, lambdas, class bodies
            if isinstance(constant, types.CodeType):
                level = max(level, self.of_code(constant, namespace))
        self.seen[id(code)] = level
        return level

    def of_object(self, value: object) -> int:
        found = self.targets.get(id(value))
        if found is not None:
            return LEVELS.index(found)
        module = str(getattr(value, "__module__", ""))
        if not module.startswith(OWN_CODE) or module == __name__:
            return 0  # the app, the libraries (and this module): in process
        if inspect.isfunction(value):
            return self.of_function(value)
        if inspect.isclass(value):
            if id(value) not in self.seen:
                self.seen[id(value)] = 0
                members = [m for m in vars(value).values() if not isinstance(m, type)]
                self.seen[id(value)] = max(map(self.of_member, members), default=0)
            return self.seen[id(value)]
        return 0

    def of_member(self, member: object) -> int:
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if isinstance(member, property):
            return max((self.of_function(f) for f in (member.fget, member.fset) if f), default=0)
        return self.of_function(member) if inspect.isfunction(member) else 0

    def of_item(self, item: pytest.Item) -> int:
        level = 0
        if isinstance(item, pytest.Function):
            level = self.of_function(item.function)
            for fixturedef in fixture_definitions(item):
                level = max(level, self.of_object(inspect.unwrap(fixturedef.func)))
        return level


def fixture_definitions(item: pytest.Function) -> Iterator[Any]:
    """The definitions of the fixtures the item uses: of each name the one in effect, and the
    one it overrides only when it asks for it (a fixture of the same name as its argument)."""
    for name in item.fixturenames:
        definitions = item._fixtureinfo.name2fixturedefs.get(name, ())
        for definition in reversed(definitions):
            yield definition
            if name not in definition.argnames:
                break


def uses_database(item: pytest.Item) -> bool:
    return item.get_closest_marker("django_db") is not None or bool(
        DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
    )


def slow_seconds(item: pytest.Item) -> int:
    """SLOW's figure for the item (any of its parameters), 0 if it is not listed."""
    name = getattr(item, "originalname", item.name)
    return SLOW.get(f"{item.nodeid.split('::', 1)[0]}::{name}", 0)


@pytest.hookimpl(wrapper=True)  # marks before ``-m`` deselects; sorts after pytest-django does
def pytest_collection_modifyitems(items: list[pytest.Item]) -> Iterator[None]:
    reach = Reach()
    postgres = postgres_missing()
    for item in items:
        if not any(item.get_closest_marker(level) for level in LEVELS):
            item.add_marker(LEVELS[reach.of_item(item)])
        if slow_seconds(item):
            item.add_marker("slow")
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))
        if uses_database(item):
            item.add_marker("database")
            if postgres:
                item.add_marker(pytest.mark.skip(reason=postgres))
    yield
    items.sort(key=slow_seconds, reverse=True)  # stable: the rest keep their order


# -- the PostgreSQL pass --------------------------------------------------------------------------


def postgres_missing() -> str:
    """Why the configured PostgreSQL cannot be used ("" when it can, or SQLite is configured)."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if "postgresql" not in database["ENGINE"]:
        return ""
    import psycopg

    try:
        with psycopg.connect(
            dbname=database["NAME"],
            user=database.get("USER") or None,
            password=database.get("PASSWORD") or None,
            host=database.get("HOST") or None,
            port=database.get("PORT") or None,
            connect_timeout=3,
        ) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        return f"PostgreSQL (DATABASE_URL) is not answering: {error}"
    return ""


def pytest_configure(config: pytest.Config) -> None:
    """Under ``CI=true`` a missing PostgreSQL fails the run before any test (checked once, by
    xdist's controller or the single process)."""
    if os.environ.get("CI") == "true" and not hasattr(config, "workerinput"):
        reason = postgres_missing()
        if reason:
            raise pytest.UsageError(f"{reason} (CI=true: services are required)")
