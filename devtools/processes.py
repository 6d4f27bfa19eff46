"""Child processes for the tests and the benchmark: one environment, one way to start, wait, stop.

Every child gets :func:`child_env`: this process's environment without what would point the app
at another database, channel layer or upstream, and with the app's own settings module. A
:class:`Child` writes its output to a temporary file; :meth:`Child.wait_until` polls until it
answers and reports that output when it exits first. daphne runs with :func:`daphne_argv`, the
command line of ``make run``.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devtools.static import collected_static
from playground import serving

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SETTINGS_MODULE = "playground.settings"  # what manage.py and playground/asgi.py default to
# What a developer's shell (or the test process) may carry that would point a child somewhere
# else: its database, its channel layer, its upstream and key (OPENAI_API_KEY, ..._FILE,
# UPSTREAM_BASE_URL, UPSTREAM_MODEL, ...). A caller sets what it wants back explicitly.
STRIPPED = frozenset({"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"})
STRIPPED_PREFIXES = ("OPENAI_", "UPSTREAM_")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
TAIL = 4000  # characters of a child's output in an error message


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(**overrides: str) -> dict[str, str]:
    """The environment of every child: this process's without :data:`STRIPPED` and anything
    starting with :data:`STRIPPED_PREFIXES`, unbuffered, the app's settings module; then
    ``overrides``."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if name not in STRIPPED and not name.startswith(STRIPPED_PREFIXES)
    }
    return {
        **kept,
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        # DEBUG is off, as in `make run`: pages need the collected, hashed static files.
        "STATIC_ROOT": str(collected_static()),
        **overrides,
    }


def manage(*args: str) -> list[str]:
    """``python manage.py ARGS`` with this interpreter (run from :data:`ROOT`)."""
    return [sys.executable, "manage.py", *args]


def daphne_argv(port: int, *options: str, host: str = "127.0.0.1") -> list[str]:
    """daphne serving the playground exactly as ``make run`` starts one process
    (playground/serving.py); ``options`` go before the application (e.g.
    ``--websocket_connect_timeout 2``). Give the child ``PORT`` too, as ``make run`` does."""
    return serving.daphne_argv(BIN / "daphne", host, port, *options)


def run(argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path = ROOT) -> str:
    """Run a command to its end; its output, or a RuntimeError with it when it fails."""
    done = subprocess.run(
        list(argv),
        cwd=cwd,
        env=dict(env) if env is not None else child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    output = done.stdout.decode(errors="replace")
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited with {done.returncode}: {output[-TAIL:]}")
    return output


def http_ok(url: str, headers: Mapping[str, str] | None = None) -> bool:
    """Whether ``url`` answers 200 (any other answer raises, as urllib does)."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    with urllib.request.urlopen(request, timeout=2) as response:
        return bool(response.status == 200)


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``port``."""
    with socket.create_connection((host, port), timeout=1):
        return True


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
class Child:
    """A child process, its output (stdout and stderr) in a temporary file until it is stopped."""

    name: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    stop_timeout: float = STOP_TIMEOUT  # after SIGTERM, before SIGKILL
    _output: str = field(default="", repr=False)  # kept when stop() removes the file

    def start(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path = ROOT
    ) -> None:
        """Spawn it (``env`` defaults to :func:`child_env`); returns at once."""
        self._forget_log()
        handle, path = tempfile.mkstemp(prefix=f"{self.name}-", suffix=".log")
        self.log_path = Path(path)
        with os.fdopen(handle, "wb") as log:
            self.process = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env) if env is not None else child_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was not started"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        """What it printed (attach it to a failure to see why)."""
        if self.log_path is not None and self.log_path.exists():
            return self.log_path.read_text(errors="replace")
        return self._output

    def check_alive(self) -> None:
        if not self.running:
            code = self.process.returncode if self.process is not None else None
            raise RuntimeError(f"{self.name} exited ({code}): {self.output()[-TAIL:]}")

    def wait_until(
        self, probe: Callable[[], bool], what: str, timeout: float = START_TIMEOUT
    ) -> None:
        """Poll ``probe`` until it returns True; a RuntimeError with the child's output if the
        child exits first or ``timeout`` passes (then the child is stopped)."""
        deadline = time.monotonic() + timeout
        error: Exception | None = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if probe():
                    return
            except Exception as exc:  # not up yet: refused, reset, a 503, ...
                error = exc
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"{self.name} did not answer {what} within {timeout:.0f} s ({error!r}): "
            f"{self.output()[-TAIL:]}"
        )

    def wait_for_url(
        self, url: str, headers: Mapping[str, str] | None = None, timeout: float = START_TIMEOUT
    ) -> None:
        """Until ``GET url`` answers 200."""
        self.wait_until(lambda: http_ok(url, headers), f"GET {url}", timeout)

    def wait_for_port(self, port: int, timeout: float = START_TIMEOUT) -> None:
        """Until it accepts TCP connections on ``port``."""
        self.wait_until(lambda: listening(port), f"on port {port}", timeout)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout``; its output file is removed (``output()``
        still answers)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._forget_log()

    def kill(self) -> None:
        """SIGKILL: the process dies mid-whatever, as in a crash (its output stays until
        ``stop()``)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait()

    def _forget_log(self) -> None:
        if self.log_path is not None:
            self._output = self.output()
            self.log_path.unlink(missing_ok=True)
            self.log_path = None
