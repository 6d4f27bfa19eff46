"""The processes a scenario measures: the simulator, the playground (daphne) and a raw server.

Each runs as its own process on loopback, started the way a user starts it. With
``BENCH_PROFILE=DIR`` in the environment the playground runs under ``bench.profiled``,
and each measured phase of a scenario is profiled into ``DIR/<scenario>-<phase>.prof`` (read it
with ``python -m pstats``).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

from devtools.processes import Child, child_env, cpu_seconds, daphne_argv, free_port, manage, run

API_KEY = "sk-bench-simulator"
BENCH_QUOTAS = (
    "QUOTA_SESSIONS_PER_OWNER",
    "QUOTA_NEW_SESSIONS_PER_HOUR",
    "QUOTA_RUNS_PER_MINUTE",
    "QUOTA_RUNS_PER_ADDRESS_PER_MINUTE",
)
_template_db: Path | None = None


@dataclass
class CpuMeter:
    """Share of one core each watched process used between start() and busy()."""

    pids: dict[str, int]
    _start: dict[str, float] = field(default_factory=dict)
    _at: float = 0.0

    def start(self) -> CpuMeter:
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._at = time.monotonic()
        return self

    def seconds(self) -> dict[str, float]:
        """CPU seconds each watched process used since start()."""
        return {name: cpu_seconds(pid) - self._start[name] for name, pid in self.pids.items()}

    @property
    def elapsed(self) -> float:
        """Wall-clock seconds since start()."""
        return time.monotonic() - self._at

    def shares(self) -> dict[str, float]:
        """Each process's share of one core since start(), in %."""
        elapsed = self.elapsed
        return {name: used / elapsed * 100 for name, used in self.seconds().items()}

    def busy(self) -> str:
        return ", ".join(f"{name} {share:.0f} %" for name, share in self.shares().items())


@dataclass
class Process(Child):
    """A measured process: ``spawn()`` starts it, ``wait_ready()`` waits until it answers."""

    stop_timeout: float = 30.0  # a daphne holding thousands of sockets takes a while to close

    def spawn(self) -> None:
        raise NotImplementedError

    def wait_ready(self) -> None:
        raise NotImplementedError


@dataclass
class SimProcess(Process):
    """``manage.py simulator`` with the given options (``--profile``, ``--cost``, ...)."""

    args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def spawn(self) -> None:
        self.start(manage("simulator", "--port", str(self.port), "--api-key", API_KEY, *self.args))

    def wait_ready(self) -> None:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        self.wait_for_url(f"{self.base_url}/_sim/status", headers)

    def client(self) -> httpx2.AsyncClient:
        """An HTTP client for the introspection endpoints."""
        headers = {"Authorization": f"Bearer {API_KEY}"}
        return httpx2.AsyncClient(base_url=self.base_url, headers=headers, timeout=60)


def migrated_database(directory: Path) -> Path:
    """A migrated SQLite database in ``directory`` (migrated once per run, then copied)."""
    global _template_db
    if _template_db is None or not _template_db.exists():
        template = Path(tempfile.mkdtemp(prefix="bench-template-")) / "db.sqlite3"
        env = child_env(DATABASE_URL=f"sqlite:///{template}")
        run(manage("migrate", "--no-input", "--verbosity", "0"), env)
        _template_db = template
    target = directory / "db.sqlite3"
    shutil.copyfile(_template_db, target)
    return target


@dataclass
class PlaygroundProcess(Process):
    """daphne serving the playground, as ``make run`` starts it, pointed at a simulator."""

    upstream: str = ""
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    data_dir: Path | None = None
    database: Path | None = None  # another process's, to serve one site together

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def spawn(self) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="bench-playground-"))
        if self.database is None:
            self.database = migrated_database(self.data_dir)
        env = child_env(
            **{
                "PORT": str(self.port),
                "DEBUG": "false",
                "UPSTREAM_BASE_URL": self.upstream,
                "OPENAI_API_KEY": API_KEY,
                "UPSTREAM_MODEL": "sim",
                "DATABASE_URL": f"sqlite:///{self.database}",
                # The benchmark is one visitor opening thousands of sessions and runs from one
                # address, which the quotas exist to refuse.
                **dict.fromkeys(BENCH_QUOTAS, "1000000"),
                **self.env,  # last: a scenario's own settings win
            }
        )
        daphne = daphne_argv(self.port)  # as `make run`
        if self.profile_prefix is not None:
            self.profile_prefix.parent.mkdir(parents=True, exist_ok=True)
            module = [sys.executable, "-m", "bench.profiled", str(self.profile_prefix)]
            daphne = [*module, *daphne[1:]]
        self.start(daphne, env)

    @property
    def profile_prefix(self) -> Path | None:
        directory = os.environ.get("BENCH_PROFILE")
        return Path(directory).resolve() / self.name if directory else None

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Profile what the playground does in this block (with ``BENCH_PROFILE=DIR`` only)
        into ``DIR/<scenario>-<name>.prof``; blocks of the same name add up."""
        prefix = self.profile_prefix
        if prefix is None:
            yield
            return
        target = prefix.with_name(f"{prefix.name}-{name}.prof")
        prefix.with_name(f"{prefix.name}.next").write_text(str(target))
        written = target.stat().st_mtime_ns if target.exists() else 0
        os.kill(self.pid, signal.SIGUSR1)
        try:
            yield
        finally:
            os.kill(self.pid, signal.SIGUSR2)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if target.exists() and target.stat().st_mtime_ns != written:
                    break
                time.sleep(0.05)

    def wait_ready(self) -> None:
        self.wait_for_url(self.base_url + "/")

    def stop(self) -> None:
        super().stop()
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)


@dataclass
class RawProcess(Process):
    """The raw ``websockets`` server (``bench.rawserver``): the floor of a socket's cost."""

    port: int = field(default_factory=free_port)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def spawn(self) -> None:
        self.start([sys.executable, "-m", "bench.rawserver", "--port", str(self.port)])

    def wait_ready(self) -> None:
        self.wait_for_port(self.port)


def start_all(*processes: Process) -> None:
    """Spawn every process, then wait for each (they start in parallel)."""
    try:
        for process in processes:
            process.spawn()
        for process in processes:
            process.wait_ready()
    except BaseException:
        for process in processes:
            process.stop()
        raise
