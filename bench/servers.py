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
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
API_KEY = "sk-bench-simulator"
MAX_WS_BYTES = "67108864"  # as `make run` serves it
LISTEN_BACKLOG = 4096  # as `make run` listens (the raw server too)
# A developer's shell may carry settings that would point the playground somewhere else.
STRIPPED = ("UPSTREAM_BASE_URL", "OPENAI_API_KEY", "OPENAI_API_KEY_FILE", "REDIS_URL")
START_TIMEOUT = 30.0
_template_db: Path | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    """The process's resident set size (VmRSS) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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

    def busy(self) -> str:
        elapsed = time.monotonic() - self._at
        shares = {
            name: (cpu_seconds(pid) - self._start[name]) / elapsed * 100
            for name, pid in self.pids.items()
        }
        return ", ".join(f"{name} {share:.0f} %" for name, share in shares.items())


@dataclass
class Process:
    """A child process with its output in a temporary log file."""

    name: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def spawn(self, command: list[str], env: dict[str, str]) -> None:
        handle, path = tempfile.mkstemp(prefix=f"bench-{self.name}-", suffix=".log")
        self.log_path = Path(path)
        with os.fdopen(handle, "wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited: {self.output()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)


def wait_until(probe: Process, url: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        probe.check_alive()
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    probe.stop()
    raise RuntimeError(f"{probe.name} did not answer {url} within {START_TIMEOUT:.0f} s")


BENCH_QUOTAS = (
    "QUOTA_SESSIONS_PER_OWNER",
    "QUOTA_NEW_SESSIONS_PER_HOUR",
    "QUOTA_RUNS_PER_MINUTE",
    "QUOTA_RUNS_PER_ADDRESS_PER_MINUTE",
)


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in STRIPPED}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


@dataclass
class SimProcess(Process):
    """``manage.py simulator`` with the given options (``--profile``, ``--cost``, ...)."""

    args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def spawn_default(self) -> None:
        command = [sys.executable, "manage.py", "simulator", "--port", str(self.port)]
        self.spawn([*command, "--api-key", API_KEY, *self.args], child_env())

    def wait_ready(self) -> None:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        wait_until(self, f"{self.base_url}/_sim/status", headers)

    def client(self) -> httpx2.AsyncClient:
        """An HTTP client for the introspection endpoints."""
        headers = {"Authorization": f"Bearer {API_KEY}"}
        return httpx2.AsyncClient(base_url=self.base_url, headers=headers, timeout=60)


def migrated_database(directory: Path) -> Path:
    """A migrated SQLite database in ``directory`` (migrated once per run, then copied)."""
    global _template_db
    if _template_db is None or not _template_db.exists():
        template_dir = Path(tempfile.mkdtemp(prefix="bench-template-"))
        template = template_dir / "db.sqlite3"
        env = child_env(DATABASE_URL=f"sqlite:///{template}")
        migrate = [sys.executable, "manage.py", "migrate", "--no-input", "--verbosity", "0"]
        done = subprocess.run(migrate, cwd=ROOT, env=env, capture_output=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"migrate failed: {done.stderr.decode(errors='replace')}")
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

    def spawn_default(self) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="bench-playground-"))
        if self.database is None:
            self.database = migrated_database(self.data_dir)
        database = self.database
        env = child_env(
            PORT=str(self.port),
            DEBUG="false",
            UPSTREAM_BASE_URL=self.upstream,
            OPENAI_API_KEY=API_KEY,
            UPSTREAM_MODEL="sim",
            DATABASE_URL=f"sqlite:///{database}",
            # The benchmark is one visitor opening thousands of sessions and runs from one
            # address, which the quotas exist to refuse.
            **dict.fromkeys(BENCH_QUOTAS, "1000000"),
            **self.env,
        )
        daphne = [
            str(BIN / "daphne"),
            # As `make run`: a listen backlog the size of a storm (Twisted's default is 50, and
            # connects beyond it wait for the kernel to retry them, 1 s, 3 s, 7 s later).
            *("--endpoint", f"tcp:port={self.port}:interface=127.0.0.1:backlog={LISTEN_BACKLOG}"),
            *("--websocket-max-message-size", MAX_WS_BYTES),
            *("--websocket-max-frame-size", MAX_WS_BYTES),
            "playground.asgi:application",
        ]
        if self.profile_prefix is not None:
            self.profile_prefix.parent.mkdir(parents=True, exist_ok=True)
            module = [sys.executable, "-m", "bench.profiled", str(self.profile_prefix)]
            daphne = [*module, *daphne[1:]]
        self.spawn(daphne, env)

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
        wait_until(self, self.base_url + "/", {})

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

    def spawn_default(self) -> None:
        command = [sys.executable, "-m", "bench.rawserver", "--port", str(self.port)]
        self.spawn(command, child_env())

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the raw server did not listen in time")


def start_all(*processes: Any) -> None:
    """Spawn every process, then wait for each (they start in parallel)."""
    try:
        for process in processes:
            process.spawn_default()
        for process in processes:
            process.wait_ready()
    except BaseException:
        for process in processes:
            process.stop()
        raise
