"""Configuration from the environment: the readers, the upstream derivation, the system checks."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.checks import Error, Warning, run_checks
from django.core.exceptions import ImproperlyConfigured

from devtools.static import collected_static
from playground import checks, env

ROOT = Path(__file__).resolve().parent.parent

# Every variable the settings read, removed from the child's environment before a case sets its own.
SETTINGS_VARIABLES = (
    "SECRET_KEY",
    "SECRET_KEY_FILE",
    "DATA_DIR",
    "STATIC_ROOT",
    "HTTPS",
    "HSTS_SECONDS",
    "HSTS_INCLUDE_SUBDOMAINS",
    "HSTS_PRELOAD",
    "DEBUG",
    "ALLOWED_HOSTS",
    "LOG_LEVEL",
    "SIMULATOR_PROFILE",
    "SIMULATOR_SEED",
    "PORT",
    "OPENAI_API_KEY",
    "OPENAI_API_KEY_FILE",
    "UPSTREAM_BASE_URL",
    "UPSTREAM_MODEL",
    "REDIS_URL",
    "DATABASE_URL",
    "IDLE_GRACE_SECONDS",
    "DJANGO_SETTINGS_MODULE",
)

SETTINGS_SCRIPT = """
import json, os
import django
os.environ["DJANGO_SETTINGS_MODULE"] = "playground.settings"
django.setup()
from django.conf import settings as s
layer = s.CHANNEL_LAYERS["default"]
print(json.dumps({
    "base_url": s.UPSTREAM_BASE_URL,
    "embedded": s.UPSTREAM_IS_EMBEDDED,
    "model": s.UPSTREAM_MODEL,
    "api_key": s.OPENAI_API_KEY,
    "layer": layer["BACKEND"],
    "layer_hosts": layer.get("CONFIG", {}).get("hosts", []),
    "redis_url": s.REDIS_URL,
    "engine": s.DATABASES["default"]["ENGINE"],
    "db_name": str(s.DATABASES["default"]["NAME"]),
    "idle_grace": s.IDLE_GRACE_SECONDS,
    "port": s.PORT,
}, default=repr))
"""


def clean_environment(**values: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    environment.update(values)
    return environment


def run_python(args: list[str], **values: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=clean_environment(**values),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def derived_settings(**values: str) -> dict[str, Any]:
    result = run_python(["-c", SETTINGS_SCRIPT], **values)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


# -- the readers -----------------------------------------------------------------------------------


@pytest.fixture
def no_secret(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("PLAYGROUND_TEST_SECRET", raising=False)
    monkeypatch.delenv("PLAYGROUND_TEST_SECRET_FILE", raising=False)
    return monkeypatch


def test_a_secret_is_read_from_the_variable_and_stripped(no_secret: pytest.MonkeyPatch) -> None:
    no_secret.setenv("PLAYGROUND_TEST_SECRET", "  sk-value\n")
    assert env.env_secret("PLAYGROUND_TEST_SECRET") == "sk-value"


def test_a_secret_is_read_from_the_file_and_stripped(
    no_secret: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "secret"
    path.write_text("sk-from-file\n\n")
    no_secret.setenv("PLAYGROUND_TEST_SECRET_FILE", str(path))
    assert env.env_secret("PLAYGROUND_TEST_SECRET") == "sk-from-file"


def test_the_variable_wins_over_the_file(no_secret: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("sk-from-file")
    no_secret.setenv("PLAYGROUND_TEST_SECRET_FILE", str(path))
    no_secret.setenv("PLAYGROUND_TEST_SECRET", "sk-direct")
    assert env.env_secret("PLAYGROUND_TEST_SECRET") == "sk-direct"
    # A blank variable does not hide the file.
    no_secret.setenv("PLAYGROUND_TEST_SECRET", "   ")
    assert env.env_secret("PLAYGROUND_TEST_SECRET") == "sk-from-file"


def test_no_secret_is_an_empty_string(no_secret: pytest.MonkeyPatch) -> None:
    assert env.env_secret("PLAYGROUND_TEST_SECRET") == ""


def test_an_unreadable_secret_file_names_the_variable(
    no_secret: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "secret"
    no_secret.setenv("PLAYGROUND_TEST_SECRET_FILE", str(missing))
    with pytest.raises(ImproperlyConfigured, match="PLAYGROUND_TEST_SECRET_FILE") as caught:
        env.env_secret("PLAYGROUND_TEST_SECRET")
    assert str(missing) in str(caught.value)
    # A directory is not a readable file either.
    no_secret.setenv("PLAYGROUND_TEST_SECRET_FILE", str(tmp_path))
    with pytest.raises(ImproperlyConfigured, match="PLAYGROUND_TEST_SECRET_FILE"):
        env.env_secret("PLAYGROUND_TEST_SECRET")


def test_floats_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IDLE_GRACE_SECONDS", raising=False)
    assert env.env_float("IDLE_GRACE_SECONDS", 300.0) == 300.0
    monkeypatch.setenv("IDLE_GRACE_SECONDS", "")
    assert env.env_float("IDLE_GRACE_SECONDS", 300.0) == 300.0
    monkeypatch.setenv("IDLE_GRACE_SECONDS", "2.5")
    assert env.env_float("IDLE_GRACE_SECONDS", 300.0) == 2.5
    monkeypatch.setenv("IDLE_GRACE_SECONDS", "10")
    assert env.env_float("IDLE_GRACE_SECONDS", 300.0) == 10.0
    monkeypatch.setenv("IDLE_GRACE_SECONDS", "soon")
    with pytest.raises(ImproperlyConfigured, match="IDLE_GRACE_SECONDS='soon'"):
        env.env_float("IDLE_GRACE_SECONDS", 300.0)


# -- what the settings derive ----------------------------------------------------------------------


def test_without_a_key_or_url_the_upstream_is_the_embedded_simulator() -> None:
    derived = derived_settings()
    assert derived["embedded"] is True
    assert derived["base_url"] == "http://127.0.0.1:8000/v1"
    assert derived["model"] == "sim"
    assert derived["api_key"]  # the simulator wants a non-empty key
    assert derived["port"] == 8000
    assert derived["idle_grace"] == 300.0


def test_the_embedded_simulator_is_reached_on_the_configured_port() -> None:
    derived = derived_settings(PORT="9123")
    assert derived["base_url"] == "http://127.0.0.1:9123/v1"
    assert derived["embedded"] is True


def test_a_key_selects_the_openai_api() -> None:
    derived = derived_settings(OPENAI_API_KEY="sk-test-123")
    assert derived["embedded"] is False
    assert derived["base_url"] == "https://api.openai.com/v1"
    assert derived["api_key"] == "sk-test-123"
    assert derived["model"] == "gpt-5-mini"


def test_a_key_file_selects_the_openai_api(tmp_path: Path) -> None:
    path = tmp_path / "openai-key"
    path.write_text("sk-from-file\n")
    derived = derived_settings(OPENAI_API_KEY_FILE=str(path))
    assert derived["embedded"] is False
    assert derived["base_url"] == "https://api.openai.com/v1"
    assert derived["api_key"] == "sk-from-file"


def test_an_unreadable_key_file_stops_the_start(tmp_path: Path) -> None:
    result = run_python(["-c", SETTINGS_SCRIPT], OPENAI_API_KEY_FILE=str(tmp_path / "missing"))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "OPENAI_API_KEY_FILE" in result.stderr


def test_a_base_url_is_used_as_given_without_its_trailing_slash() -> None:
    derived = derived_settings(
        UPSTREAM_BASE_URL="http://upstream.internal:9000/v1/", OPENAI_API_KEY="any"
    )
    assert derived["embedded"] is False
    assert derived["base_url"] == "http://upstream.internal:9000/v1"
    assert derived["model"] == "gpt-5-mini"


def test_a_base_url_without_a_key_stops_the_start() -> None:
    result = run_python(["-c", SETTINGS_SCRIPT], UPSTREAM_BASE_URL="http://upstream.internal/v1")
    assert result.returncode != 0
    assert "OPENAI_API_KEY (or OPENAI_API_KEY_FILE) is empty" in result.stderr


def test_a_base_url_wins_over_the_openai_default() -> None:
    derived = derived_settings(
        OPENAI_API_KEY="sk-test", UPSTREAM_BASE_URL="https://proxy.example/v1"
    )
    assert derived["base_url"] == "https://proxy.example/v1"
    assert derived["api_key"] == "sk-test"


def test_the_model_can_be_chosen() -> None:
    assert derived_settings(UPSTREAM_MODEL="sim-large")["model"] == "sim-large"
    chosen = derived_settings(OPENAI_API_KEY="sk-test", UPSTREAM_MODEL="gpt-test")
    assert chosen["model"] == "gpt-test"


def test_idle_grace_is_read() -> None:
    assert derived_settings(IDLE_GRACE_SECONDS="1.5")["idle_grace"] == 1.5


def test_without_redis_the_layer_is_in_memory() -> None:
    derived = derived_settings()
    assert derived["layer"] == "agents.live.memory_layer.SweptInMemoryChannelLayer"
    assert derived["redis_url"] == ""


def test_redis_selects_the_redis_layer_with_a_long_read_timeout() -> None:
    derived = derived_settings(REDIS_URL="redis://127.0.0.1:6390/3")
    assert derived["layer"] == "channels_redis.core.RedisChannelLayer"
    [host] = derived["layer_hosts"]
    assert host["address"] == "redis://127.0.0.1:6390/3"
    # redis-py's 5 s default read timeout kills consumers idling in the layer's blocking pop.
    assert host["socket_timeout"] > 5
    # After a Redis restart, a pooled connection reconnects instead of failing its command.
    assert "ConnectionError" in str(host["retry_on_error"])


def test_database_url_selects_postgresql() -> None:
    derived = derived_settings(DATABASE_URL="postgres://play:pw@db.internal:5432/playground")
    assert derived["engine"] == "django.db.backends.postgresql"
    assert derived["db_name"] == "playground"


def test_without_database_url_the_database_is_sqlite_in_the_checkout() -> None:
    derived = derived_settings()
    assert derived["engine"] == "django.db.backends.sqlite3"
    assert Path(derived["db_name"]) == ROOT / "db.sqlite3"


# -- system checks ---------------------------------------------------------------------------------


def ids(messages: list[Any]) -> set[str]:
    return {message.id for message in messages}


IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
REDIS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"]},
    }
}


def test_the_in_memory_layer_is_a_warning_when_debug_is_off(settings: Any) -> None:
    settings.DEBUG = False
    settings.CHANNEL_LAYERS = IN_MEMORY
    [message] = checks.check_channel_layer()
    assert message.id == "playground.W001"
    assert isinstance(message, Warning)
    assert "REDIS_URL" in (message.hint or "")
    assert "playground.W001" in ids(run_checks(tags=["compatibility"]))


def test_the_in_memory_layer_is_fine_in_debug(settings: Any) -> None:
    settings.DEBUG = True
    settings.CHANNEL_LAYERS = IN_MEMORY
    assert checks.check_channel_layer() == []
    assert "playground.W001" not in ids(run_checks(tags=["compatibility"]))


def test_the_redis_layer_is_fine_without_debug(settings: Any) -> None:
    settings.DEBUG = False
    settings.CHANNEL_LAYERS = REDIS
    assert checks.check_channel_layer() == []


def test_uncollected_static_files_without_debug_are_an_error(settings: Any, tmp_path: Path) -> None:
    settings.DEBUG = False
    settings.STATIC_ROOT = tmp_path  # empty: collectstatic never ran
    [message] = checks.check_static_files()
    assert message.id == "playground.E004"
    assert isinstance(message, Error)
    assert "collectstatic" in (message.hint or "")
    assert "playground.E004" in ids(run_checks(tags=["compatibility"]))


def test_uncollected_static_files_are_fine_in_debug(settings: Any, tmp_path: Path) -> None:
    settings.DEBUG = True  # files are found where they are, unhashed
    settings.STATIC_ROOT = tmp_path
    assert checks.check_static_files() == []


def test_collected_static_files_are_fine(settings: Any) -> None:
    settings.DEBUG = False
    settings.STATIC_ROOT = collected_static()
    assert checks.check_static_files() == []


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def open_port() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def test_an_unreachable_upstream_is_a_deploy_warning(settings: Any, closed_port: int) -> None:
    settings.UPSTREAM_IS_EMBEDDED = False
    settings.UPSTREAM_BASE_URL = f"http://127.0.0.1:{closed_port}/v1"
    [message] = checks.check_upstream_reachable()
    assert message.id == "playground.W003"
    assert isinstance(message, Warning)
    assert f"127.0.0.1:{closed_port}" in message.msg
    assert "playground.W003" in ids(run_checks(include_deployment_checks=True, tags=["upstream"]))
    # It opens a connection, so only deploy checks run it.
    assert "playground.W003" not in ids(run_checks(tags=["upstream"]))


def test_a_reachable_upstream_is_fine(settings: Any, open_port: int) -> None:
    settings.UPSTREAM_IS_EMBEDDED = False
    settings.UPSTREAM_BASE_URL = f"http://127.0.0.1:{open_port}/v1"
    assert checks.check_upstream_reachable() == []
    assert "playground.W003" not in ids(
        run_checks(include_deployment_checks=True, tags=["upstream"])
    )


def test_the_embedded_simulator_is_not_probed(settings: Any, closed_port: int) -> None:
    # This process is the upstream: at check time it is not serving yet.
    settings.UPSTREAM_IS_EMBEDDED = True
    settings.UPSTREAM_BASE_URL = f"http://127.0.0.1:{closed_port}/v1"
    assert checks.check_upstream_reachable() == []


def documented_environment() -> dict[str, str]:
    """The production environment file of docs/deployment.md's step 1."""
    text = (ROOT / "docs" / "deployment.md").read_text()
    for block in re.findall(r"```ini\n(.*?)```", text, re.S):
        if "ALLOWED_HOSTS=" in block:
            return dict(line.strip().split("=", 1) for line in block.splitlines() if "=" in line)
    raise AssertionError("docs/deployment.md shows no environment file")


def test_check_deploy_is_clean_with_the_documented_production_settings(
    tmp_path: Path, open_port: int
) -> None:
    """The doc's environment as is, but for what only exists on the server: the secret files
    (made here as the doc says), the upstream (here a port that accepts), and STATIC_ROOT
    filled by collectstatic (step 2)."""
    environment = documented_environment()
    assert environment["HTTPS"] == "true"
    assert "DEBUG" not in environment
    secret_key, openai_key = tmp_path / "secret-key", tmp_path / "openai-key"
    secret_key.write_text(secrets.token_urlsafe(50) + "\n")
    openai_key.write_text("sk-test\n")
    result = run_python(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        **{
            **environment,
            "SECRET_KEY_FILE": str(secret_key),
            "OPENAI_API_KEY_FILE": str(openai_key),
            "UPSTREAM_BASE_URL": f"http://127.0.0.1:{open_port}/v1",
            "STATIC_ROOT": str(collected_static()),
            "DATA_DIR": str(tmp_path / "data"),
        },
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output, output
    assert not (tmp_path / "data" / "secret_key").exists()  # the file's key, none made


def test_check_deploy_without_https_and_collectstatic_says_so(tmp_path: Path) -> None:
    result = run_python(
        ["manage.py", "check", "--deploy"],
        STATIC_ROOT=str(tmp_path / "static"),
        DATA_DIR=str(tmp_path / "data"),
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "playground.E004" in output
    assert "playground.W001" in output  # no REDIS_URL
    assert "security.W012" in output  # session cookie not HTTPS-only: HTTPS is off
    assert "playground.W003" not in output  # the embedded simulator is not probed
