"""A real simulator server in a subprocess (``manage.py simulator``), as users start it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from devtools.processes import ROOT, Child, free_port, manage

__all__ = ["API_KEY", "ROOT", "SimServer", "free_port"]  # ROOT and free_port: tests import them

API_KEY = "sk-test-simulator"


@dataclass
class SimServer:
    args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    api_key: str = API_KEY
    child: Child = field(default_factory=lambda: Child("simulator"))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/responses"

    def start(self) -> SimServer:
        self.child.start(manage("simulator", "--port", str(self.port), *self.args))
        auth = {"Authorization": f"Bearer {self.api_key}"}
        self.child.wait_for_url(f"{self.base_url}/_sim/status", auth)
        return self

    def stop(self) -> None:
        self.child.stop()

    def output(self) -> str:
        """What the server printed (attach it to a failure to see why)."""
        return self.child.output()

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
