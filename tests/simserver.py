"""A real simulator server in a subprocess (``manage.py simulator``), as users start it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "sk-test-simulator"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SimServer:
    args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    api_key: str = API_KEY
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/responses"

    def start(self) -> SimServer:
        command = [sys.executable, "manage.py", "simulator", "--port", str(self.port), *self.args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        handle, name = tempfile.mkstemp(prefix="simulator-", suffix=".log")
        self.log_path = Path(name)
        with os.fdopen(handle, "wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"simulator exited: {self.output()}")
            try:
                self.get("/_sim/status")
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("simulator did not start within 20 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        """What the server printed (attach it to a failure to see why)."""
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def request(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.api_key}")
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        if status != 200:
            raise AssertionError(f"GET {path} answered {status}: {body}")
        return body

    def oracle(self, response_id: str) -> dict[str, Any]:
        return self.get(f"/_sim/responses/{response_id}")  # type: ignore[no-any-return]

    def connections(self) -> list[dict[str, Any]]:
        return self.get("/_sim/connections")["data"]  # type: ignore[no-any-return]

    def connection(self, connection_id: str) -> dict[str, Any]:
        return self.get(f"/_sim/connections/{connection_id}")  # type: ignore[no-any-return]

    def last_connection(self, transport: str = "websocket") -> dict[str, Any]:
        ids = [c["id"] for c in self.connections() if c["transport"] == transport]
        return self.connection(ids[-1])
