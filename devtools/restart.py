"""A rolling restart under load, for the test (tests/test_rolling_restart.py) and the benchmark
(`bench restart`): `make run WORKERS=2` with Redis and PostgreSQL, sessions streaming in tabs
that reconnect as the page does (at once on CLOSE_RESTART), and each daphne restarted in turn
with supervisorctl while they stream.

What a tab saw is kept: its frames' arrival times (the longest stall while its run streamed),
its reconnects, and its page, which must end as the database's transcript.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import psycopg
from websockets.exceptions import ConnectionClosed, InvalidStatus

from devtools.processes import ROOT, child_env
from devtools.tabs import Tab
from playground.protocol import RECONNECT_CODES
from playground.serving import SUPERVISORD_CONFIG

START_TIMEOUT = 60.0
RECONNECT_TIMEOUT = 30.0
BIN = Path(sys.executable).parent


@dataclass
class Watched:
    """A tab that follows its session through restarts, reconnecting as static/playground.js."""

    tab: Tab
    reconnects: int = 0
    longest_stall: float = 0.0  # seconds without a frame while its run streamed
    closed_with: list[int] = field(default_factory=list)
    _last: float = 0.0
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._last = time.monotonic()
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            showed = self.tab.busy  # what the page showed while it waited for this frame
            try:
                await self.tab.recv_frame(wait=None)
                self._seen(showed)
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else 1006
                self.closed_with.append(code)
                if code not in RECONNECT_CODES:
                    raise
                await self._reopen(showed)

    def _seen(self, showed: bool | None) -> None:
        """A frame came: the wait for it was a stall if the page showed a run meanwhile."""
        now = time.monotonic()
        if showed:
            self.longest_stall = max(self.longest_stall, now - self._last)
        self._last = now

    async def _reopen(self, showed: bool | None) -> None:
        deadline = time.monotonic() + RECONNECT_TIMEOUT
        while True:
            try:
                await self.tab.open()
                break
            except (OSError, ConnectionClosed, InvalidStatus, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        self.reconnects += 1
        self._seen(showed)  # the snapshot: the page is whole again

    async def send(self, message: str) -> None:
        """Send as the page does; if its socket is being replaced, once the new one is open."""
        deadline = time.monotonic() + RECONNECT_TIMEOUT
        while True:
            try:
                await self.tab.send(message)
                return
            except ConnectionClosed:
                if (failure := self.failure()) is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the tab did not come back: {failure!r}") from None
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._task
        with suppress(Exception):
            await self.tab.close()

    def failure(self) -> BaseException | None:
        if self._task is not None and self._task.done() and not self._task.cancelled():
            return self._task.exception()
        return None


@dataclass
class Supervised:
    """`make run WORKERS=N`, in its own process group, with its control socket in ``run_dir``."""

    port: int
    work: Path
    env: dict[str, str]
    workers: int = 2
    process: subprocess.Popen[bytes] | None = None

    @property
    def run_dir(self) -> Path:
        return self.work / "run"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.work / "make-run.log"

    def start(self) -> Self:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        environment = child_env(PLAYGROUND_RUN_DIR=str(self.run_dir), **self.env)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    "make",
                    "--no-print-directory",
                    "run",
                    f"PORT={self.port}",
                    f"WORKERS={self.workers}",
                ],
                cwd=ROOT,
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_running(range(self.workers))
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def ctl(self, *args: str) -> str:
        env = {**os.environ, "PLAYGROUND_RUN_DIR": str(self.run_dir)}
        done = subprocess.run(
            [str(BIN / "supervisorctl"), "-c", str(SUPERVISORD_CONFIG), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout + done.stderr

    def pids(self) -> dict[int, int]:
        """Worker number → pid, for the workers supervisord reports running."""
        found = {}
        for line in self.ctl("status").splitlines():
            name, _, rest = line.partition(" ")
            if name.startswith("playground:playground-") and "RUNNING" in rest:
                found[int(name.rsplit("-", 1)[1])] = int(rest.split("pid ", 1)[1].split(",")[0])
        return found

    def wait_running(self, workers: range | list[int], old: dict[int, int] | None = None) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self.process is not None, self.output()
            assert self.process.poll() is None, self.output()
            pids = self.pids()
            fresh = all(n in pids and (old is None or pids[n] != old.get(n)) for n in workers)
            if fresh:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"workers {list(workers)} not running: {self.ctl('status')}")
            time.sleep(0.1)

    def restart(self, worker: int) -> float:
        """SIGTERM worker ``worker`` and start it again; seconds until it had exited."""
        before = self.pids()
        started = time.monotonic()
        out = self.ctl("stop", f"playground:playground-{worker}")
        assert "stopped" in out, out
        stopped = time.monotonic() - started
        out = self.ctl("start", f"playground:playground-{worker}")
        assert "started" in out, out
        self.wait_running([worker], before)
        return stopped

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def work_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="playground-restart-"))


def transcript(database_url: str, session: str) -> list[tuple[str, str]]:
    """(status, text) of the session's items in the database (SQLite or PostgreSQL), in order."""
    from agents.models import Item  # here: Django is set up by whoever calls this

    query = "SELECT data, status FROM agents_item WHERE session_id = {} ORDER BY position"
    if database_url.startswith("sqlite:///"):
        with closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as connection:
            rows = connection.execute(query.format("?"), (session.replace("-", ""),)).fetchall()
        items = [(status, Item(data=json.loads(data))) for data, status in rows]
    else:
        with psycopg.connect(database_url) as pg:
            items = [(s, Item(data=d)) for d, s in pg.execute(query.format("%s"), (session,))]
    return [(status, item.text) for status, item in items]


async def settled(database_url: str, sessions: list[str], replies: int, within: float) -> None:
    """Until every session has ``replies`` replies (after as many messages), none streaming."""
    deadline = time.monotonic() + within
    while True:
        rows = [await asyncio.to_thread(transcript, database_url, s) for s in sessions]
        if all(len(r) == 2 * replies and r[-1][0] != "in_progress" for r in rows):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"runs did not end within {within:g} s: {rows}")
        await asyncio.sleep(0.2)


@dataclass
class Round:
    """One message in every tab, and a restart of ``worker`` (None: none) while they stream."""

    worker: int | None
    stopped_s: float | None = None  # how long the process took to exit on SIGTERM
    longest_stall_s: float = 0.0
    reconnects: int = 0


async def run_round(
    supervised: Supervised,
    watched: list[Watched],
    message: str,
    number: int,
    worker: int | None,
    database_url: str,
) -> Round:
    result = Round(worker)
    before = sum(each.reconnects for each in watched)
    for each in watched:
        each.longest_stall = 0.0
        await each.send(message)
    deadline = time.monotonic() + 10
    while not all(each.tab.busy for each in watched):  # every run streams
        if time.monotonic() > deadline:
            raise AssertionError(f"not every run started: {[e.tab.busy for e in watched]}")
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    if worker is not None:
        result.stopped_s = await asyncio.to_thread(supervised.restart, worker)
    sessions = [each.tab.session_id for each in watched]
    await settled(database_url, sessions, number, within=120)
    for each in watched:
        if (failure := each.failure()) is not None:
            raise AssertionError(f"a tab failed: {failure!r}")
    await asyncio.sleep(1.0)  # the last frames reach the tabs
    result.longest_stall_s = max(each.longest_stall for each in watched)
    result.reconnects = sum(each.reconnects for each in watched) - before
    return result


@dataclass
class Outcome:
    """What the tabs show against the database, after every round."""

    gaps: int = 0  # replies a tab shows with text missing (or not at all)
    duplicates: int = 0  # replies a tab shows with text repeated (or twice)
    interrupted: int = 0  # replies the database holds as anything but completed
    replies: int = 0


def outcome(watched: list[Watched], database_url: str) -> Outcome:
    found = Outcome()
    for each in watched:
        rows = transcript(database_url, each.tab.session_id)
        found.replies += len(rows[1::2])
        found.interrupted += sum(1 for status, _ in rows[1::2] if status != "completed")
        expected = [" ".join(text.split()) for _, text in rows]
        shown = each.tab.page.texts()
        for want, have in zip(expected, shown, strict=False):
            if have != want:
                if len(have) < len(want):
                    found.gaps += 1
                else:
                    found.duplicates += 1
        if len(shown) < len(expected):
            found.gaps += len(expected) - len(shown)
        found.duplicates += max(0, len(shown) - len(expected))
    return found
