"""The dev tooling's child processes: daphne as ``make run`` starts it, one environment for all."""

from __future__ import annotations

import pytest

from devtools.processes import ROOT, child_env, daphne_argv
from devtools.tabs import own_origin


def test_daphne_runs_with_the_command_line_of_make_run() -> None:
    recipe = next(
        line for line in (ROOT / "Makefile").read_text().splitlines() if "$(BIN)/daphne" in line
    )
    command = recipe.split("$(BIN)/daphne", 1)[1]
    command = command.replace("$(PORT)", "8000").replace("$(subst :,\\:,$(HOST))", "127.0.0.1")
    assert daphne_argv(8000)[1:] == command.split()
    assert "interface=\\:\\:1:" in daphne_argv(8000, host="::1")[2]  # as the Makefile escapes it


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
