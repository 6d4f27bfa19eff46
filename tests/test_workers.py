"""`make run WORKERS=N`: N daphnes on one listening socket under supervisord (deploy/
supervisord.conf), and the systemd units that do the same (deploy/playground.socket,
playground-worker@.service). Which process served a connection is read from the kernel: the process
holding the server end of that TCP connection (/proc)."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devtools.processes import ROOT, child_env, free_port
from playground import serving
from tests.liveserver import ADDRESS_QUOTAS, Browser, session_id
from tests.livetab import LiveTab, drain_and_close
from tests.services import REDIS_URL, require_redis

pytestmark = pytest.mark.e2e

DEPLOY = ROOT / "deploy"
START_TIMEOUT = 60.0


def socket_inodes(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[8:-1])
    return found


def server_end_inode(client: Any) -> str:
    """The inode of the server's end of ``client``'s connection (its local port is our peer's)."""
    client_port = client.getsockname()[1]
    server_port = client.getpeername()[1]
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, remote_port = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
        if (local_port, remote_port) == (server_port, client_port):
            return fields[9]
    raise AssertionError("no server end for this connection")


def listening_pid(port: int, candidates: list[int]) -> int:
    """The process among ``candidates`` listening on 127.0.0.1:``port`` (state 0A: LISTEN)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":
            [owner] = [pid for pid in candidates if fields[9] in socket_inodes(pid)]
            return owner
    raise AssertionError(f"nothing listens on {port}")


def serving_pid(port: int, candidates: list[int]) -> int:
    """Open a connection, make one request on it, and say which process holds its server end."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = client.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        inode = server_end_inode(client)
        owners = [pid for pid in candidates if inode in socket_inodes(pid)]
        assert len(owners) == 1, (inode, owners)
        return owners[0]


def daphnes(supervisor: int) -> list[int]:
    """supervisord's daphne children."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return sorted(
        int(pid)
        for pid in children
        if b"daphne" in Path(f"/proc/{pid}/cmdline").read_bytes()
        and b"--fd\x000" in Path(f"/proc/{pid}/cmdline").read_bytes()
    )


def scrape(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    [value] = re.findall(rf"^{name} (\S+)$", text, re.M)
    return float(value)


@dataclass
class MakeRun:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # make, then supervisord and its children
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def make_run(work: Path, port: int, *make_args: str, **env: str) -> MakeRun:
    log = work / "make-run.log"
    environment = child_env(
        DATABASE_URL=f"sqlite:///{work / 'db.sqlite3'}",
        STATIC_ROOT=str(work / "static"),
        DATA_DIR=str(work / "data"),
        **dict.fromkeys(ADDRESS_QUOTAS, "1000000"),
        **env,
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run", f"PORT={port}", *make_args],
            cwd=ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return MakeRun(process, port, log)


@pytest.fixture
def work() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="playground-workers-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def wait_for_workers(run: MakeRun, count: int) -> list[int]:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert run.process.poll() is None, run.output()
        supervisors = [
            int(pid)
            for pid in Path(f"/proc/{run.process.pid}/task/{run.process.pid}/children")
            .read_text()
            .split()
        ]
        workers = [pid for s in supervisors for pid in daphnes(s)]
        if len(workers) == count:
            try:
                serving_pid(run.port, workers)
                return workers
            except (OSError, AssertionError):
                pass
        time.sleep(0.2)
    raise AssertionError(f"{count} workers never answered:\n{run.output()[-4000:]}")


def test_make_run_as_a_fresh_clone_runs_it_serves_with_debug_off(work: Path) -> None:
    """`make run` itself, no settings: one process, static files collected under hashed names
    with year-long cache headers, a made-up session's URL a plain 404, no debug page."""
    port = free_port()
    run = make_run(work, port)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert run.process.poll() is None, run.output()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    home = response.read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline, run.output()
                time.sleep(0.2)
        [css] = re.findall(r'href="(/static/playground\.[0-9a-f]{12}\.css)"', home)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{css}", timeout=5) as response:
            assert "immutable" in response.headers["Cache-Control"]
        stranger = f"http://127.0.0.1:{port}/sessions/00000000-0000-4000-8000-000000000000/"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(stranger, timeout=5)
        page = refused.value.read().decode()
        assert refused.value.code == 404
        assert "This session is not here" in page
        assert "URLconf" not in page
        assert (work / "data" / "secret_key").is_file()  # made on first start, kept
        assert (work / "static" / "staticfiles.json").is_file()  # collected by make run
    finally:
        run.stop()


def test_workers_above_one_without_redis_refuse_to_start_naming_redis_url(work: Path) -> None:
    run = make_run(work, free_port(), "WORKERS=2")
    try:
        assert run.process.wait(60) != 0
    finally:
        run.stop()
    assert "REDIS_URL" in run.output(), run.output()
    assert "WORKERS=2" in run.output()


async def test_two_workers_share_one_socket_and_both_serve_a_run(work: Path) -> None:
    """`make run WORKERS=2` with Redis: connections land on both daphnes (seen by which process
    holds each one's server end), and a run started in a tab on one streams whole to a tab on
    the other, through the simulator the command started for them."""
    require_redis()
    port = free_port()
    metrics = free_port()
    run = make_run(work, port, "WORKERS=2", REDIS_URL=REDIS_URL, METRICS_PORT=str(metrics))
    tabs: list[LiveTab] = []
    try:
        workers = await asyncio.to_thread(wait_for_workers, run, 2)
        served = {serving_pid(port, workers) for _ in range(40)}
        assert served == set(workers), (served, workers)

        # Each process's metrics on a port of its own (METRICS_PORT + its number), listened on
        # by that process.
        holders = {listening_pid(metrics + n, workers) for n in range(2)}
        assert holders == set(workers), (holders, workers)
        for n in range(2):
            assert scrape(metrics + n, "playground_leases_held") >= 0

        base = f"http://127.0.0.1:{port}"
        browser = Browser(base)
        sid = session_id(browser.new_session())
        # Tabs until both processes hold one (each socket's server end names its process).
        by_process: dict[int, LiveTab] = {}
        for _ in range(40):
            tab = await LiveTab(base, sid, browser.cookie_header).open()
            tabs.append(tab)
            assert tab.ws is not None
            inode = server_end_inode(tab.ws.transport.get_extra_info("socket"))
            [owner] = [pid for pid in workers if inode in socket_inodes(pid)]
            by_process.setdefault(owner, tab)
            if len(by_process) == 2:
                break
        assert len(by_process) == 2, "every tab landed on one process"
        first, second = by_process.values()
        turns = await asyncio.gather(first.run("/chat 300 tides"), second.until_idle())
        assert turns[0].texts()
        assert turns[0].texts() == turns[1].texts()
        assert first.page.texts() == second.page.texts()
    finally:
        await drain_and_close(*tabs)
        run.stop()
    assert "Traceback" not in run.output(), run.output()[-4000:]


def test_the_supervisord_config_runs_daphne_as_one_process_runs() -> None:
    """The same options as `make run WORKERS=1` (playground/serving.py), on the handed socket."""
    config = (DEPLOY / "supervisord.conf").read_text()
    [command] = re.findall(r"^command=(%\(ENV_PLAYGROUND_BIN\)s/daphne .+)$", config, re.M)
    argv = shlex.split(command)
    assert argv[1:] == ["--fd", "0", *serving.DAPHNE_OPTIONS, serving.APPLICATION]


def systemd_units(work: Path) -> tuple[Path, Path]:
    """The shipped units with this checkout for /srv/playground, the template as instance 1."""
    socket_unit = work / "playground.socket"
    service = work / "playground-worker@1.service"
    shutil.copy(DEPLOY / "playground.socket", socket_unit)
    text = (DEPLOY / "playground-worker@.service").read_text().replace("/srv/playground", str(ROOT))
    service.write_text(text)
    return socket_unit, service


def test_the_systemd_units_verify_and_their_command_serves_on_the_handed_socket(
    work: Path,
) -> None:
    """systemd cannot run here (it is not this container's first process): the units pass
    `systemd-analyze verify`, and the service's ExecStart serves on a socket handed to it as
    systemd hands it (fd 3, LISTEN_FDS), by systemd's own `systemd-socket-activate`."""
    analyze, activate = shutil.which("systemd-analyze"), shutil.which("systemd-socket-activate")
    if not (analyze and activate):
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze and systemd-socket-activate are missing (apt systemd)")
        pytest.skip("systemd-analyze and systemd-socket-activate are missing (apt systemd)")
    socket_unit, service = systemd_units(work)
    verified = subprocess.run(
        [analyze, "verify", "--man=no", str(socket_unit), str(service)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "Backlog=4096" in socket_unit.read_text()
    [exec_start] = re.findall(r"^ExecStart=(.+)$", service.read_text(), re.M)
    argv = shlex.split(exec_start)
    assert argv[1:] == [
        "--proxy-headers",
        "--fd",
        "3",
        *serving.DAPHNE_OPTIONS,
        serving.APPLICATION,
    ]
    port = free_port()
    env = child_env(
        DATABASE_URL=f"sqlite:///{work / 'db.sqlite3'}",
        DATA_DIR=str(work / "data"),
    )
    subprocess.run(
        [str(Path(argv[0]).parent / "python"), "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    # Like systemd, it starts the command with a clean environment: pass the unit's on
    # (EnvironmentFile= in production).
    passed = [f"--setenv={name}" for name in ("DATABASE_URL", "DATA_DIR", "STATIC_ROOT", "HOME")]
    child = subprocess.Popen(
        [activate, "--listen", f"127.0.0.1:{port}", *passed, *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=20) as client:
                    client.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    assert client.recv(65536).startswith(b"HTTP/1.1 200")
                    break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        os.killpg(child.pid, signal.SIGTERM)
        output = child.communicate(timeout=30)[0].decode(errors="replace")
    assert "Execing" in output, output
    assert "--fd 3" in output, output
