"""Rolling restarts lose nothing (issue 16): `make run WORKERS=2` with Redis and PostgreSQL, 20
sessions streaming, and each daphne restarted in turn (supervisorctl: SIGTERM, then a new
process on the same socket). Every tab reconnects to the other process and ends with the
database's transcript, no gap, no duplicate, and no run is marked interrupted."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import psycopg
import pytest

from devtools.processes import free_port
from devtools.restart import Supervised, Watched, outcome, run_round, work_dir
from devtools.tabs import Tab
from tests.cluster import database_url, drop_database, new_database_name
from tests.liveserver import ADDRESS_QUOTAS, Browser, session_id
from tests.services import POSTGRES_URL, REDIS_URL, require_postgres, require_redis

pytestmark = pytest.mark.e2e

SESSIONS = 20
# At the realistic profile (the simulator's reading pace) a reply of this many tokens streams
# for several seconds: each restart lands in the middle of the runs.
MESSAGE = "/chat 400 tide tables"


@pytest.fixture
def site() -> Iterator[tuple[Supervised, str]]:
    require_redis()
    require_postgres()
    database = new_database_name()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    work = work_dir()
    supervised = Supervised(
        free_port(),
        work,
        {
            "DATABASE_URL": database_url(database),
            "REDIS_URL": REDIS_URL,
            "DATA_DIR": str(work / "data"),
            "SHUTDOWN_GRACE_SECONDS": "30",
            **dict.fromkeys(ADDRESS_QUOTAS, "1000000"),
        },
    )
    try:
        yield supervised.start(), database_url(database)
    finally:
        supervised.stop()
        drop_database(database)
        shutil.rmtree(work, ignore_errors=True)


async def test_a_rolling_restart_under_20_streams_loses_nothing(
    site: tuple[Supervised, str],
) -> None:
    supervised, url = site
    browser = Browser(supervised.base_url)
    sessions = [session_id(browser.new_session()) for _ in range(SESSIONS)]
    watched = [Watched(Tab(s, browser.cookie_header, server=supervised.base_url)) for s in sessions]
    try:
        for each in watched:
            await each.tab.open()
            each.start()
        rounds = [
            await run_round(supervised, watched, MESSAGE, number, worker, url)
            for number, worker in enumerate((0, 1), start=1)
        ]
        found = outcome(watched, url)
    finally:
        for each in watched:
            await each.stop()
    assert found.replies == 2 * SESSIONS
    assert (found.gaps, found.duplicates, found.interrupted) == (0, 0, 0), found
    # Each restart closed the tabs on its process (4012, the page reconnects at once), and they
    # came back on the other.
    for done in rounds:
        assert done.reconnects >= 1, rounds
    assert sum(done.reconnects for done in rounds) >= SESSIONS, rounds
    assert all(set(each.closed_with) <= {4012} for each in watched)
    # The restarted process waited for its runs (seconds, well within the 30 s grace).
    assert all(done.stopped_s is not None and done.stopped_s < 30 for done in rounds), rounds
    assert "Traceback" not in supervised.output(), supervised.output()[-5000:]
