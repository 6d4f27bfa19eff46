"""What a fresh `make run` is to a stranger on the network: DEBUG off, plain error pages, static
files under hashed names with cache headers, a secret key of its own, a clear refusal of hosts
it does not serve. The live server starts exactly as `make run` does (tests/liveserver.py), on
the collected static files (`make run` collects them first)."""

from __future__ import annotations

import gzip
import re
import stat
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from devtools.processes import ROOT, child_env
from devtools.static import collected_static
from playground.secret_key import kept_secret_key
from tests.liveserver import LiveServer

ASSET_RE = re.compile(r'(?:src|href)="(/static/[^"?#]+)"')
HASHED_RE = re.compile(r"\.[0-9a-f]{12}\.[a-z]+$")
# What Django's debug pages show, which a stranger must never see.
DEBUG_MARKERS = ("URLconf", "Traceback", "DEBUG = True", "settings.py", "urlpatterns")


@pytest.fixture(scope="module")
def live(migrated_database: Path) -> Iterator[LiveServer]:
    server = LiveServer(template=migrated_database).start()
    yield server
    server.stop()


def fetch(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_a_strangers_session_url_is_a_plain_404(live: LiveServer) -> None:
    """Another browser's session, a made-up one, and a path that is nothing at all."""
    owner = live.browser()
    taken = owner.new_session()
    for url in (taken, f"{live.base_url}/sessions/{uuid.uuid4()}/", f"{live.base_url}/nope/"):
        status, _, body = fetch(url)
        page = body.decode()
        assert status == 404, url
        assert "404" in page, page
        for marker in DEBUG_MARKERS:
            assert marker not in page, (url, marker)


def test_pages_name_hashed_static_files_served_with_far_future_cache_headers(
    live: LiveServer,
) -> None:
    _, _, home = fetch(live.base_url + "/")
    assets = sorted(set(ASSET_RE.findall(home.decode())))
    assert any(a.startswith("/static/django_htmx/") for a in assets), assets
    for asset in assets:
        assert HASHED_RE.search(asset), asset
        status, headers, body = fetch(live.base_url + asset)
        assert status == 200, asset
        assert "immutable" in headers["Cache-Control"], headers
        assert "max-age=315360000" in headers["Cache-Control"], headers
        assert body == (collected_static() / asset.removeprefix("/static/")).read_bytes()
        status, headers, zipped = fetch(live.base_url + asset, **{"Accept-Encoding": "gzip"})
        assert headers["Content-Encoding"] == "gzip", asset
        assert gzip.decompress(zipped) == body, asset
        # A browser that has it asks with its ETag and gets nothing again.
        status, _, empty = fetch(live.base_url + asset, **{"If-None-Match": headers["ETag"]})
        assert (status, empty) == (304, b""), asset
    status, _, _ = fetch(live.base_url + "/static/no-such-file.css")
    assert status == 404


def test_a_refused_host_gets_a_page_and_a_log_line_naming_allowed_hosts(live: LiveServer) -> None:
    status, _, body = fetch(live.base_url + "/", Host="lan-box.example")
    page = body.decode()
    assert status == 400
    assert "ALLOWED_HOSTS" in page, page
    assert "lan-box.example" in page, page
    for marker in DEBUG_MARKERS:
        assert marker not in page, marker
    live.child.wait_until(lambda: "ALLOWED_HOSTS" in live.output(), "the refusal's log line")
    line = next(line for line in live.output().splitlines() if "lan-box.example" in line)
    assert "ALLOWED_HOSTS" in line, line
    assert "environment variable" in line, line
    assert "Traceback" not in live.output()  # one line, not Django's ERROR with a traceback
    # With a port, the page names the host as ALLOWED_HOSTS lists it: without the port.
    _, _, body = fetch(live.base_url + "/", Host="lan-box.example:8000")
    assert "ALLOWED_HOSTS=127.0.0.1,localhost,lan-box.example</code>" in body.decode()


def test_debug_mode_is_asked_for_and_serves_static_files_where_they_lie(
    migrated_database: Path,
) -> None:
    """`make dev`'s DEBUG=true: unhashed names, read from static/ on each request."""
    server = LiveServer({"DEBUG": "true"}, template=migrated_database).start()
    try:
        _, _, home = fetch(server.base_url + "/")
        assert '"/static/playground.js"' in home.decode()
        status, _, body = fetch(server.base_url + "/static/playground.js")
        assert status == 200
        assert body == (ROOT / "static" / "playground.js").read_bytes()
    finally:
        server.stop()


def test_make_dev_is_debug_with_reloading_and_make_run_collects_first() -> None:
    dev = subprocess.run(["make", "-n", "dev"], cwd=ROOT, capture_output=True, text=True)
    assert "DEBUG=true" in dev.stdout, dev.stdout
    assert "manage.py runserver" in dev.stdout, dev.stdout
    run = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True)
    steps = run.stdout
    assert steps.index("collectstatic") < steps.index("migrate") < steps.index("serve"), steps
    assert "DEBUG" not in steps, steps


# -- the secret key ------------------------------------------------------------------------------


def test_a_key_is_made_once_private_and_kept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = kept_secret_key(data)
    path = data / "secret_key"
    assert len(key) >= 50
    assert path.read_text().strip() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert kept_secret_key(data) == key  # the next start


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    keys: list[str] = []
    start = threading.Barrier(16)

    def one() -> None:
        start.wait()
        keys.append(kept_secret_key(tmp_path))

    threads = [threading.Thread(target=one) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 16
    assert len(set(keys)) == 1


def test_an_unwritable_data_dir_names_what_to_set(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ImproperlyConfigured, match=r"SECRET_KEY.*DATA_DIR"):
        kept_secret_key(blocker / "data")


SHOW_KEY = (
    "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'playground.settings'; "
    "django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"
)


def served_key(**env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SHOW_KEY],
        cwd=ROOT,
        env=child_env(**env),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def test_a_process_without_a_key_uses_the_kept_one_and_a_set_key_wins(tmp_path: Path) -> None:
    made = served_key(DATA_DIR=str(tmp_path))
    assert made == (tmp_path / "secret_key").read_text().strip()
    assert served_key(DATA_DIR=str(tmp_path)) == made  # a restart signs as before
    other = tmp_path / "other"
    assert served_key(DATA_DIR=str(other), SECRET_KEY="x" * 60) == "x" * 60
    assert not other.exists()
