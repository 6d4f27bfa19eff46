"""One host, all its cores (docs/deployment.md): a daphne process per port, each started with the
systemd unit's own command line and the documented environment, sharing Redis and one PostgreSQL
database, behind the shipped nginx config (deploy/nginx.conf) with its upstream listing both
ports, round robin as shipped.

The test talks to nginx only, as a browser on the site's host name does (``Host`` and ``Origin``
name ``playground.example.com``, the config's ``server_name``; only the port differs from
production's 80). Which process served what is read from each daphne's access lines (its
stdout, playground/access_log.py): one per request, ``Socket open <path>`` per socket.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import pwd
import re
import shlex
import shutil
import tempfile
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import psycopg
import pytest
from websockets.asyncio.client import connect

from agents.models import Item
from devtools.page import Page
from devtools.processes import BIN, ROOT, Child, child_env, free_port, manage, run
from devtools.static import collected_static
from devtools.tabs import Socket, Tab
from tests.cluster import database_url, drop_database, new_database_name
from tests.liveserver import ADDRESS_QUOTAS, Browser, session_id
from tests.livetab import drain_and_close
from tests.services import POSTGRES_URL, REDIS_URL, require_nginx, require_postgres, require_redis
from tests.simserver import SimServer

# The processes are live playgrounds, started with the documented command line rather than by
# LiveServer: the rule of tests/markers.py would see only child processes (integration).
pytestmark = pytest.mark.e2e

DEPLOYMENT = (ROOT / "docs" / "deployment.md").read_text()
NGINX_CONFIG = (ROOT / "deploy" / "nginx.conf").read_text()
HOST = re.findall(r"^\s*server_name\s+(\S+);", NGINX_CONFIG, re.M)[0]
PROCESSES = 2
TABS = 4
# The app's access lines (playground/access_log.py, in each daphne's stdout): a request's
# `playground.access METHOD path status`, a socket's `Socket open path` once it is accepted.
ACCESS_RE = re.compile(r"playground\.access (?:(\S+) (\S+) \d{3} |(Socket) open (\S+) )", re.M)
ASSET_RE = re.compile(r'(?:src|href)="(/static/[^"?#]+)"')
CONTENT_TYPES = {".js": {"application/javascript", "text/javascript"}, ".css": {"text/css"}}
# A hashed static name (collectstatic's manifest storage): nginx marks it cacheable for good.
HASHED_RE = re.compile(r"\.[0-9a-f]{12}\.[a-z]+$")


def documented_environment() -> dict[str, str]:
    """The environment file of the doc's step 1 (/etc/playground/env)."""
    for block in re.findall(r"```ini\n(.*?)```", DEPLOYMENT, re.S):
        if "ALLOWED_HOSTS=" in block:
            return dict(line.strip().split("=", 1) for line in block.splitlines() if "=" in line)
    raise AssertionError("docs/deployment.md shows no environment file")


def documented_command(port: int) -> list[str]:
    """The systemd template unit's ExecStart for the instance ``port``, with this checkout's
    daphne for /srv/playground's (its WorkingDirectory, ROOT, is where children start)."""
    match = re.search(r"^\s*ExecStart=(.+)$", DEPLOYMENT, re.M)
    assert match, "docs/deployment.md shows no systemd unit"
    argv = shlex.split(match[1].replace("%i", str(port)))
    assert argv[0] == "/srv/playground/.venv/bin/daphne", argv
    return [str(BIN / "daphne"), *argv[1:]]


def site_config(ports: list[int], port: int, work: Path) -> str:
    """deploy/nginx.conf with its upstream listing ``ports``, listening on ``port``, the checkout
    and its .venv for /srv/playground's, and its access log in ``work``."""
    site = NGINX_CONFIG
    servers = "".join(f"    server 127.0.0.1:{each};\n" for each in ports)
    site, found = re.subn(r"(?:^[ \t]*server 127\.0\.0\.1:\d+;\n)+", servers, site, flags=re.M)
    assert found == 1, "the upstream's server lines are not where they were"
    site = re.sub(r"listen \[::\]:80;", "", site)
    site = re.sub(r"listen 80;", f"listen 127.0.0.1:{port};", site)
    site = re.sub(r"access_log\s+\S+", f"access_log {work / 'access.log'}", site)
    site, found = re.subn(r"/srv/playground/staticfiles/", f"{collected_static()}/", site)
    assert found == 1, "the static location no longer reads STATIC_ROOT"
    return site.replace("/srv/playground", str(ROOT))


def main_config(nginx: str, work: Path) -> str:
    """What the distribution's nginx.conf gives the site: the http context, with mime.types
    (without it every static file would go out as the default type), here in ``work``."""
    conf_path = re.search(r"--conf-path=(\S+)", run([nginx, "-V"]))
    mime = Path(conf_path[1] if conf_path else "/etc/nginx/nginx.conf").parent / "mime.types"
    temp = " ".join(
        f"{kind}_temp_path {work / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root, nginx would run its workers as nobody, who may not read the temporary directory.
    user = f"user {pwd.getpwuid(0).pw_name};\n" if os.geteuid() == 0 else ""
    return (
        f"daemon off; pid {work / 'nginx.pid'}; error_log {work / 'error.log'};\n{user}"
        "events { worker_connections 512; }\n"
        f"http {{ include {mime}; default_type application/octet-stream; {temp}\n"
        f"include {work / 'site.conf'}; }}\n"
    )


@dataclass
class Process:
    """One daphne of the site; its output is its access log."""

    port: int
    child: Child = field(default_factory=lambda: Child("daphne"))

    def entries(self) -> list[tuple[str, str]]:
        """(method or WS action, path) of each access log line so far, in order."""
        return [
            ("SOCKET", socket) if kind else (method, path)
            for method, path, kind, socket in ACCESS_RE.findall(self.child.output())
        ]

    def sockets(self, path: str) -> int:
        """Upgrades that reached this process for ``path``."""
        return self.entries().count(("SOCKET", path))


class HostHeader(urllib.request.BaseHandler):
    """Every request names the site's host, wherever the URL points (nginx's port)."""

    handler_order = 100  # before the HTTP handler, which would name the URL's host

    def http_request(self, request: urllib.request.Request) -> urllib.request.Request:
        request.add_unredirected_header("Host", HOST)
        return request


@dataclass
class SiteBrowser(Browser):
    """A browser on http://playground.example.com/, connecting to nginx's port."""

    def __post_init__(self) -> None:
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPCookieProcessor(self.jar),
            HostHeader(),
        )


class SiteTab(Tab):
    """A tab of http://playground.example.com/sessions/<id>/: its socket names the site's host
    and origin and goes to nginx's port."""

    def __init__(self, session_id: str, cookie: str, port: int) -> None:
        super().__init__(session_id, cookie, server=f"http://{HOST}")
        self.nginx_port = port

    async def open(self, wait: float = 30) -> Self:
        self.frames, self.page, self.busy, self.received = [], Page(), None, 0
        headers = {"Cookie": self.cookie, "Origin": str(self.origin)}
        ws = await connect(
            f"ws://{HOST}{self.path}",
            additional_headers=headers,
            compression=None,
            max_size=None,
            open_timeout=wait,
            proxy=None,
            host="127.0.0.1",  # the TCP connection's end; the Host header stays HOST
            port=self.nginx_port,
        )
        self.connection = Socket(ws)
        self.first_frame = await self.recv_frame(wait)
        return self

    @property
    def response_headers(self) -> tuple[int, str]:
        """The upgrade's status and Server header."""
        assert isinstance(self.connection, Socket)
        assert self.connection.ws.response is not None
        response = self.connection.ws.response
        return response.status_code, response.headers.get("Server", "")


@dataclass
class Site:
    port: int  # nginx's
    processes: list[Process]
    database_url: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def browser(self) -> SiteBrowser:
        return SiteBrowser(self.url)

    def tab(self, session_id: str, cookie: str) -> SiteTab:
        return SiteTab(session_id, cookie, self.port)

    def output(self) -> str:
        return "\n".join(f"--- port {p.port}\n{p.child.output()}" for p in self.processes)

    def replies(self, session_id: str) -> list[tuple[str, str, str]]:
        """(status, upstream id, text) of the session's items in the database, in order."""
        query = "SELECT data, status FROM agents_item WHERE session_id = %s ORDER BY position"
        with psycopg.connect(self.database_url) as connection:
            rows = connection.execute(query, (session_id,)).fetchall()
        items = [(Item(data=data), status) for data, status in rows]
        return [(status, str(item.data.get("id")), item.text) for item, status in items]


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    nginx = require_nginx()
    require_redis()
    require_postgres()
    work = Path(tempfile.mkdtemp(prefix="playground-cores-"))
    database = new_database_name()
    upstream = SimServer(["--cost", "tokens_per_s=2000"])
    processes = [Process(free_port()) for _ in range(PROCESSES)]
    server = Child("nginx")
    try:
        key_file = work / "openai-key"
        key_file.write_text(upstream.api_key + "\n")
        env = {
            **documented_environment(),  # ALLOWED_HOSTS=playground.example.com, ...
            # This nginx listens on plain HTTP: the doc's has TLS, and with HTTPS on every
            # request would be redirected to https://.
            "HTTPS": "false",
            "SECRET_KEY": "cores-test-" + uuid.uuid4().hex,
            "DATABASE_URL": database_url(database),
            "REDIS_URL": REDIS_URL,
            "OPENAI_API_KEY_FILE": str(key_file),
            "UPSTREAM_BASE_URL": upstream.base_url,
            "UPSTREAM_MODEL": "sim",
            # Every visitor comes from 127.0.0.1 here, as every live server's do.
            **dict.fromkeys(ADDRESS_QUOTAS, "1000000"),
        }
        with ThreadPoolExecutor(1) as pool:
            simulator = pool.submit(upstream.start)
            with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
                connection.execute(f'CREATE DATABASE "{database}"')
            run(manage("migrate", "--no-input"), child_env(**env))  # step 2, once
            simulator.result()
        for process in processes:  # step 3: the unit's instances, PORT=%i
            process.child.start(
                documented_command(process.port), child_env(**env, PORT=str(process.port))
            )
        for process in processes:
            process.child.wait_for_port(process.port)  # no request: the logs stay nginx's
        port = free_port()
        (work / "site.conf").write_text(site_config([p.port for p in processes], port, work))
        (work / "nginx.conf").write_text(main_config(nginx, work))
        server.start([nginx, "-c", str(work / "nginx.conf"), "-p", str(work), "-e", "stderr"])
        server.wait_for_port(port, timeout=10)
        yield Site(port, processes, database_url(database))
    finally:
        server.stop()
        with ThreadPoolExecutor(PROCESSES) as pool:
            list(pool.map(lambda process: process.child.stop(), processes))
        upstream.stop()
        drop_database(database)
        shutil.rmtree(work, ignore_errors=True)


def local_file(asset: str) -> Path:
    """The file in STATIC_ROOT that nginx serves for ``asset``."""
    path = collected_static() / asset.removeprefix("/static/")
    assert path.is_file(), f"{asset} is not in STATIC_ROOT"
    return path


def test_pages_reach_both_processes_and_nginx_serves_the_static_files(site: Site) -> None:
    """A session made on the home page, through nginx: its four requests go round robin to the
    two processes; the page's scripts and stylesheets come from nginx, byte for byte the files,
    with their types (what mime.types gives; a stylesheet as text/plain would not apply)."""
    before = [len(process.entries()) for process in site.processes]
    browser = site.browser()
    path = urlsplit(browser.new_session()).path  # GET /, POST /sessions/new/, its redirect
    status, _, page = browser.get(path)
    assert status == 200
    served = [process.entries()[n:] for process, n in zip(site.processes, before, strict=True)]
    # Each page request reached exactly one process, and round robin gave both some.
    made = [("GET", "/"), ("POST", "/sessions/new/"), ("GET", path), ("GET", path)]
    assert sorted(entry for entries in served for entry in entries) == sorted(made), served
    assert all(served), served

    assets = sorted(set(ASSET_RE.findall(page)))
    assert any(re.fullmatch(r"/static/playground\.[0-9a-f]{12}\.js", a) for a in assets), assets
    assert any(asset.startswith("/static/django_htmx/") for asset in assets), assets
    for asset in assets:
        assert HASHED_RE.search(asset), asset  # every page names its files by hashed name
        with browser.opener.open(site.url + asset, timeout=10) as response:
            assert response.status == 200, asset
            assert response.headers["Server"].startswith("nginx/"), asset
            content_type = response.headers.get_content_type()
            assert content_type in CONTENT_TYPES[Path(asset).suffix], (asset, content_type)
            # A year (nginx's `expires max` says ten), never revalidated.
            cache = ", ".join(response.headers.get_all("Cache-Control") or [])
            assert "max-age=315360000" in cache, (asset, cache)
            assert "immutable" in cache, (asset, cache)
            assert response.read() == local_file(asset).read_bytes(), asset
        compressed = urllib.request.Request(site.url + asset, headers={"Accept-Encoding": "gzip"})
        with browser.opener.open(compressed, timeout=10) as response:
            assert response.headers["Content-Encoding"] == "gzip", asset  # the .gz copy
            assert gzip.decompress(response.read()) == local_file(asset).read_bytes(), asset
    # nginx read them itself: no process saw one (with DEBUG off they would answer 404).
    statics = [e for p in site.processes for e in p.entries() if e[1].startswith("/static/")]
    assert not statics, statics


async def test_tabs_through_nginx_on_both_processes_each_stream_the_whole_run(site: Site) -> None:
    """Four tabs on one session, opened one by one through nginx: each upgrade is nginx's 101,
    and one process's log gains its ``Socket open`` (written when it is accepted, so before
    the tab reads its first frame). The session's owner is one process: its tabs get a frame per
    delta, the other's get them batched through Redis; every tab's deltas, joined, must be the
    reply the database holds, character for character."""
    browser = site.browser()
    sid = session_id(browser.new_session())
    socket_path = f"/ws/sessions/{sid}/"
    tabs: list[SiteTab] = []
    landed: list[int] = []  # the process each tab's socket reached
    try:
        for _ in range(TABS):
            before = [process.sockets(socket_path) for process in site.processes]
            tab = await site.tab(sid, browser.cookie_header).open()
            tabs.append(tab)
            assert tab.response_headers[0] == 101
            assert tab.response_headers[1].startswith("nginx/"), tab.response_headers
            after = [process.sockets(socket_path) for process in site.processes]
            reached = [n for n, (b, a) in enumerate(zip(before, after, strict=True)) if a > b]
            assert len(reached) == 1, (before, after, site.output())
            landed += reached
        assert set(landed) == set(range(PROCESSES)), landed  # round robin: both have tabs

        # One tab starts a run; every tab, on either process, gets every delta of it.
        runs = await asyncio.gather(
            tabs[0].run("/chat 800 estuary sediment"),
            *(tab.until_idle() for tab in tabs[1:]),
        )
        replies = site.replies(sid)
        assert [status for status, _, _ in replies] == ["completed", "completed"], replies
        _, reply_id, reply = replies[1]
        assert len(reply) > 1000
        for n, turn in enumerate(runs):
            assert turn.texts() == {reply_id: reply}, f"tab {n} on process {landed[n]}"
        pages = [tab.page.texts() for tab in tabs]
        assert pages[0][-1] == " ".join(reply.split())
        assert all(texts == pages[0] for texts in pages), pages
    finally:
        await drain_and_close(*tabs)
