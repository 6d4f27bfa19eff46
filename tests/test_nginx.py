"""The shipped nginx config (deploy/nginx.conf) keeps share tokens out of its access log.

A share link keeps its token in the URL's fragment, which browsers never send; but a link of the
old form (``/s/<token>/``) or a typed socket path would carry it in the path, and nginx's default
log format writes the whole request line. With nginx installed, a real nginx serves the config
in front of a stand-in upstream and its log is read; without, the config itself is checked.
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from devtools.processes import ROOT, Child, free_port
from tests.services import require_nginx

CONFIG = ROOT / "deploy" / "nginx.conf"
# Variables that hold the raw request line, path or referring URL: a log format must not write
# them (the referrer of an old-form link's page holds its token).
RAW_PATH_RE = re.compile(
    r"\$(request|request_uri|uri|document_uri|args|query_string|http_referer)(?![A-Za-z0-9_])"
)


def log_formats(config: str) -> dict[str, str]:
    """Each log_format's name and its (joined) format."""
    formats = {}
    for match in re.finditer(r"^\s*log_format\s+(\S+)\s+(.*?);", config, re.M | re.S):
        formats[match[1]] = match[2]
    return formats


def test_every_access_log_uses_a_format_that_writes_no_raw_path() -> None:
    config = CONFIG.read_text()
    uncommented = "\n".join(line.split("#", 1)[0] for line in config.splitlines())
    formats = log_formats(uncommented)
    assert formats, "no log_format: nginx's default one writes the whole request line"
    access_logs = re.findall(r"^\s*access_log\s+(\S+)(?:\s+(\S+?))?\s*;", uncommented, re.M)
    assert access_logs, "no access_log: nginx's default one writes the whole request line"
    for path, name in access_logs:
        if path == "off":
            continue
        assert name in formats, f"access_log {path} uses {name or 'the default format'}"
        raw = RAW_PATH_RE.search(formats[name])
        assert raw is None, f"the log format {name} writes {raw and raw[0]}"


@pytest.fixture
def upstream() -> Iterator[int]:
    """A stand-in for the daphne processes: 200 for anything."""

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_real_nginx_logs_share_paths_without_their_token(upstream: int) -> None:
    nginx = require_nginx()
    work = Path(tempfile.mkdtemp(prefix="playground-nginx-"))
    port = free_port()
    access_log = work / "access.log"
    site = CONFIG.read_text()
    # The same config, on a free port, in front of the stand-in, logging where the test reads.
    site = re.sub(r"server 127\.0\.0\.1:\d+;", f"server 127.0.0.1:{upstream};", site)
    site = re.sub(r"listen \[::\]:80;", "", site)
    site = re.sub(r"listen 80;", f"listen 127.0.0.1:{port};", site)
    site = re.sub(r"access_log\s+\S+", f"access_log {access_log}", site)
    (work / "site.conf").write_text(site)
    temp = " ".join(
        f"{kind}_temp_path {work / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi")
    )
    (work / "nginx.conf").write_text(
        f"daemon off; pid {work / 'nginx.pid'}; error_log {work / 'error.log'};\n"
        "events { worker_connections 64; }\n"
        # Where nginx logs unless the site says otherwise, in the default (combined) format.
        f"http {{ {temp} scgi_temp_path {work / 'scgi'}; access_log {access_log};\n"
        f"include {work / 'site.conf'}; }}\n"
    )
    server = Child("nginx")
    server.start([nginx, "-c", str(work / "nginx.conf"), "-p", str(work)], cwd=work)
    try:
        token = secrets.token_urlsafe(32)
        paths = [
            "/s/",
            f"/s/{token}/",
            f"/s/{token}/?from=mail",
            f"/S/{token}/",
            f"//s/{token}/",
            f"/ws/share/{token}/",
            f"/ws/share/{token}",
            "/ws/share/",
            "/",
        ]
        server.wait_for_port(port, timeout=10)
        for path in paths:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}",
                headers={"Host": "playground.example.com", "Referer": f"http://x/s/{token}/"},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 200
        deadline = time.monotonic() + 5
        while access_log.read_text().count("\n") < len(paths) and time.monotonic() < deadline:
            time.sleep(0.05)
        log = access_log.read_text()
        assert log.count("\n") == len(paths), log
        assert token not in log, log
        assert "GET /s/ " in log
        assert "GET /s/[redacted]/ " in log
        assert "GET /ws/share/[redacted]/ " in log
        assert "GET / " in log
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
