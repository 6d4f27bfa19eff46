"""The playground in a subprocess, started exactly as ``make run`` starts it (migrate + daphne)."""

from __future__ import annotations

import http.cookiejar
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from devtools.processes import Child, child_env, daphne_argv, free_port, manage, run

CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
# Every live server's visitors come from 127.0.0.1, and with Redis the per-address counts outlive
# a test: only tests of the quotas themselves (in-process) meet them.
ADDRESS_QUOTAS = ("QUOTA_NEW_SESSIONS_PER_HOUR", "QUOTA_RUNS_PER_ADDRESS_PER_MINUTE")


@dataclass
class LiveServer:
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    data_dir: Path | None = None
    migrate: bool = True  # False for the second and later processes of one site
    # A migrated database (the ``migrated_database`` fixture) to start on a copy of, instead of
    # migrating: the migrate is a Django process of its own, ~3 s of CPU, making the same file.
    template: Path | None = None
    # With a password: the staff account "staff", created as the docs say (``createsuperuser``,
    # without its prompts) while daphne starts, two Django processes side by side.
    staff_password: str | None = None
    daphne_args: list[str] = field(default_factory=list)  # e.g. a shorter handshake timeout
    child: Child = field(default_factory=lambda: Child("playground"))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.child.process

    @property
    def environment(self) -> dict[str, str]:
        """The environment daphne and the management commands run with."""
        assert self.data_dir is not None, "not started"
        return child_env(
            **{
                "PORT": str(self.port),
                "DATABASE_URL": f"sqlite:///{self.data_dir / 'db.sqlite3'}",
                "SIMULATOR_PROFILE": "zero",
                **dict.fromkeys(ADDRESS_QUOTAS, "1000000"),
                **self.env,  # last: a test's own settings win
            }
        )

    def start(self) -> LiveServer:
        self.data_dir = Path(tempfile.mkdtemp(prefix="playground-"))
        try:
            if self.template is not None:
                shutil.copyfile(self.template, self.data_dir / "db.sqlite3")
            elif self.migrate:
                run(manage("migrate", "--no-input"), self.environment)
            with ThreadPoolExecutor(max_workers=1) as pool:
                staff = pool.submit(self._create_staff)
                self.child.start(daphne_argv(self.port, *self.daphne_args), self.environment)
                self.child.wait_for_url(self.base_url + "/")
                staff.result()
        except BaseException:
            self.stop()
            raise
        return self

    def _create_staff(self) -> None:
        if self.staff_password is None:
            return
        env = {
            "DJANGO_SUPERUSER_USERNAME": "staff",
            "DJANGO_SUPERUSER_EMAIL": "staff@example.com",
            "DJANGO_SUPERUSER_PASSWORD": self.staff_password,
        }
        self.manage("createsuperuser", "--noinput", **env)

    def manage(self, *args: str, **env: str) -> str:
        """Run a management command on this server's database (``env``: more variables)."""
        return run(manage(*args), {**self.environment, **env})

    def kill(self) -> None:
        """SIGKILL: the process dies mid-whatever, as in a crash."""
        self.child.kill()

    def stop(self) -> None:
        self.child.stop()
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def output(self) -> str:
        """What daphne printed (attach it to a failure to see why)."""
        return self.child.output()

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
