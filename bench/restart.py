"""A rolling restart under load: `make run WORKERS=2` (supervisord, one socket, Redis), tabs
streaming in every session, each daphne restarted in turn (SIGTERM, then a new process).

Three rounds of one message in every tab: the first with no restart (the baseline: the longest
stall a tab sees when nothing happens), then one restarting process 0, then one restarting
process 1. What every tab shows at the end is checked against the database: a reply with text
missing is a gap, one with text twice a duplicate; a reply not completed was interrupted.
"""

from __future__ import annotations

import logging
import shutil

from bench.browser import Browser
from bench.results import Row, Target, not_run
from bench.servers import BENCH_QUOTAS
from bench.sizes import Sizes
from bench.stack import Unavailable, bench_redis_url, check_redis
from devtools.processes import free_port
from devtools.restart import Round, Supervised, Watched, outcome, run_round, work_dir
from devtools.tabs import Tab

log = logging.getLogger(__name__)

NAME = "restart"


async def restart(sizes: Sizes) -> list[Row]:
    try:
        redis_url = bench_redis_url()
        check_redis(redis_url)
    except Unavailable as error:
        return [not_run(NAME, "(scenario)", str(error))]
    work = work_dir()
    database = f"sqlite:///{work / 'db.sqlite3'}"
    supervised = Supervised(
        free_port(),
        work,
        {
            "DATABASE_URL": database,
            "REDIS_URL": redis_url,
            "DATA_DIR": str(work / "data"),
            "SIMULATOR_PROFILE": "realistic",
            **dict.fromkeys(BENCH_QUOTAS, "1000000"),
        },
    )
    watched: list[Watched] = []
    try:
        supervised.start()
        browser = Browser(supervised.base_url)
        sessions = [await browser.new_session() for _ in range(sizes.restart_sessions)]
        watched = [
            Watched(Tab(s, browser.cookie_header, server=supervised.base_url)) for s in sessions
        ]
        await browser.http.aclose()
        for each in watched:
            await each.tab.open()
            each.start()
        message = f"/chat {sizes.restart_tokens} tide tables"
        rounds = [
            await run_round(supervised, watched, message, number, worker, database)
            for number, worker in enumerate((None, 0, 1), start=1)
        ]
        found = outcome(watched, database)
    finally:
        for each in watched:
            await each.stop()
        supervised.stop()
        shutil.rmtree(work, ignore_errors=True)
    return rows(sizes, rounds, found.gaps, found.duplicates, found.interrupted)


def rows(sizes: Sizes, rounds: list[Round], gaps: int, duplicates: int, stopped: int) -> list[Row]:
    quiet, *restarts = rounds
    stalls = [r.longest_stall_s * 1000 for r in restarts]
    exits = ", ".join(
        f"process {r.worker} exited {r.stopped_s:.1f} s after SIGTERM" for r in restarts
    )
    reconnects = ", ".join(f"{r.reconnects} tabs reconnected" for r in restarts)
    tabs = f"{sizes.restart_sessions} tabs, each streaming {sizes.restart_tokens} tokens"
    return [
        Row(NAME, f"replies with text missing (gaps), {tabs}", gaps, 0, Target("value", "<=", 0)),
        Row(
            NAME,
            "replies with text twice (duplicates)",
            duplicates,
            0,
            Target("value", "<=", 0),
        ),
        Row(
            NAME,
            "runs interrupted that could have finished",
            stopped,
            0,
            Target("value", "<=", 0),
        ),
        Row(
            NAME,
            "longest stall a tab saw, ms: restarting vs no restart",
            max(stalls),
            quiet.longest_stall_s * 1000,
            note=f"{exits}; {reconnects}; stalls {', '.join(f'{s:.0f}' for s in stalls)} ms",
        ),
    ]
