"""The dev tooling's child processes: daphne as ``make run`` starts it, one environment for all."""

from __future__ import annotations

import pytest

from devtools.processes import BIN, ROOT, child_env, daphne_argv
from devtools.tabs import own_origin
from playground import serving


def test_daphne_runs_with_the_command_line_of_make_run() -> None:
    """`make run` starts `manage.py serve` (playground/serving.py), whose one-process command
    line the children share; with WORKERS=2 the same options go to daphne through the config."""
    recipe = next(
        line for line in (ROOT / "Makefile").read_text().splitlines() if "manage.py serve" in line
    )
    assert "--host $(HOST) --port $(PORT)" in recipe
    argv = daphne_argv(8000)
    assert argv == serving.daphne_argv(BIN / "daphne", "127.0.0.1", 8000)
    assert argv[1:3] == ["--endpoint", "tcp:port=8000:interface=127.0.0.1:backlog=4096"]
    assert "interface=\\:\\:1:" in daphne_argv(8000, host="::1")[2]  # IPv6, escaped for Twisted


def test_a_child_never_inherits_where_the_app_points(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "OPENAI_API_KEY_FILE", "UPSTREAM_MODEL"):
        monkeypatch.setenv(name, "from-the-shell")
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "somewhere.else")
    monkeypatch.setenv("UNRELATED", "kept")
    env = child_env(REDIS_URL="redis://127.0.0.1:1/0")
    assert "DATABASE_URL" not in env
    assert "OPENAI_API_KEY_FILE" not in env
    assert "UPSTREAM_MODEL" not in env
    assert env["REDIS_URL"] == "redis://127.0.0.1:1/0"  # what the caller sets, it gets
    assert env["DJANGO_SETTINGS_MODULE"] == "playground.settings"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["UNRELATED"] == "kept"


@pytest.mark.parametrize(
    ("server", "origin"),
    [
        (None, "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8001", "http://127.0.0.1:8001"),
        ("ws://127.0.0.1:8001", "http://127.0.0.1:8001"),
        ("wss://example.com", "https://example.com"),
    ],
)
def test_a_tab_comes_from_its_servers_own_origin(server: str | None, origin: str) -> None:
    assert own_origin(server) == origin
