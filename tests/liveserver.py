"""The playground in a subprocess, started exactly as ``make run`` starts it (migrate + daphne)."""

from __future__ import annotations

import http.cookiejar
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.simserver import ROOT, free_port

BIN = Path(sys.executable).parent
# Settings a developer's shell may carry that would point the server somewhere else.
STRIPPED = ("UPSTREAM_BASE_URL", "OPENAI_API_KEY", "REDIS_URL", "DATABASE_URL")
MAX_WS_BYTES = "67108864"
CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


ADDRESS_QUOTAS = ("QUOTA_NEW_SESSIONS_PER_HOUR", "QUOTA_RUNS_PER_ADDRESS_PER_MINUTE")


@dataclass
class LiveServer:
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    data_dir: Path | None = None
    migrate: bool = True  # False for the second and later processes of one site
    daphne_args: list[str] = field(default_factory=list)  # e.g. a shorter handshake timeout

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.data_dir = Path(tempfile.mkdtemp(prefix="playground-"))
        env = {k: v for k, v in os.environ.items() if k not in STRIPPED}
        env |= {
            "PYTHONUNBUFFERED": "1",
            "PORT": str(self.port),
            "DATABASE_URL": f"sqlite:///{self.data_dir / 'db.sqlite3'}",
            "SIMULATOR_PROFILE": "zero",
            # Every live server's visitors come from 127.0.0.1, and with Redis the per-address
            # counts outlive a test: only tests of the quotas themselves (in-process) meet them.
            **dict.fromkeys(ADDRESS_QUOTAS, "1000000"),
            **self.env,
        }
        handle, name = tempfile.mkstemp(prefix="playground-", suffix=".log")
        self.log_path = Path(name)
        with os.fdopen(handle, "wb") as log:
            migrate = [sys.executable, "manage.py", "migrate", "--no-input"]
            if self.migrate:
                done = subprocess.run(
                    migrate, cwd=ROOT, env=env, stdout=log, stderr=log, check=False
                )
                if done.returncode != 0:
                    raise RuntimeError(f"migrate failed: {self.output()}")
            daphne = [
                str(BIN / "daphne"),
                *("--bind", "127.0.0.1", "--port", str(self.port)),
                *("--websocket-max-message-size", MAX_WS_BYTES),
                *("--websocket-max-frame-size", MAX_WS_BYTES),
                *self.daphne_args,
                "playground.asgi:application",
            ]
            self.process = subprocess.Popen(daphne, cwd=ROOT, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited: {self.output()}")
            try:
                with urllib.request.urlopen(self.base_url + "/", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the playground did not answer GET / within 20 s: {self.output()}")

    def kill(self) -> None:
        """SIGKILL: the process dies mid-whatever, as in a crash."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def output(self) -> str:
        """What migrate and daphne printed (attach it to a failure to see why)."""
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def browser(self) -> Browser:
        return Browser(self.base_url)


@dataclass
class Browser:
    """A cookie-keeping HTTP client that fills in forms the way a browser does."""

    base_url: str
    jar: http.cookiejar.CookieJar = field(default_factory=http.cookiejar.CookieJar)

    def __post_init__(self) -> None:
        handler = urllib.request.HTTPCookieProcessor(self.jar)
        self.opener = urllib.request.build_opener(handler)

    def get(self, path: str) -> tuple[int, str, str]:
        """Status, final URL (after redirects) and body."""
        with self.opener.open(self.base_url + path, timeout=10) as response:
            return response.status, response.geturl(), response.read().decode()

    def post_form(self, path: str, form_page: str, fields: dict[str, str]) -> tuple[int, str, str]:
        """Submit a form from ``form_page`` (for its CSRF token); follows the redirect."""
        _, _, page = self.get(form_page)
        match = CSRF_RE.search(page)
        assert match, f"no CSRF token in {form_page}"
        data = urllib.parse.urlencode({"csrfmiddlewaretoken": match[1], **fields}).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method="POST")
        with self.opener.open(request, timeout=10) as response:
            return response.status, response.geturl(), response.read().decode()

    def new_session(self) -> str:
        """Click "New session" on the home page; returns the session page's URL."""
        status, url, _ = self.post_form("/sessions/new/", "/", {})
        assert status == 200, f"POST /sessions/new/ ended with {status}"
        assert re.search(r"/sessions/[0-9a-f-]{36}/$", url), f"not redirected to a session: {url}"
        return url

    @property
    def cookie_header(self) -> str:
        return "; ".join(f"{cookie.name}={cookie.value}" for cookie in self.jar)


def session_id(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def create_session(base_url: str) -> tuple[str, str]:
    """A new browser creates a session: its page's URL and the browser's ``Cookie`` header."""
    browser = Browser(base_url)
    return browser.new_session(), browser.cookie_header
