"""The real services some tests need: skip without them locally, fail without them in CI."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
import redis

from devtools.processes import Child, free_port

REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"
CHROMIUM = Path("/usr/bin/chromium")


def missing(reason: str) -> NoReturn:
    """Skip the test, or fail it under ``CI=true``, where every service must be there."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: services are required)", pytrace=False)
    pytest.skip(reason)


def require_redis() -> None:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        missing(f"Redis is not answering at {REDIS_URL}: {error}")
    finally:
        client.close()


def require_postgres() -> None:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        missing(f"PostgreSQL is not answering at {POSTGRES_URL}: {error}")


def require_chromium() -> None:
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} is missing (apt-get install chromium)")


def require_nginx() -> str:
    """The nginx binary (Debian's nginx-light is enough)."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not found:
        missing("nginx is not installed (apt-get install nginx-light)")
    return found


class PrivateRedis:
    """A redis-server of a test's own (on a free port), to restart without disturbing others."""

    def __init__(self) -> None:
        self.port = free_port()
        self.child = Child("redis-server")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            missing("redis-server is not installed")
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no"]
        self.child.start(command)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            self.child.wait_until(lambda: bool(client.ping()), f"PING at {self.url}", timeout=10)
        finally:
            client.close()
        return self

    def stop(self) -> None:
        self.child.kill()  # at once, as a crash
        self.child.stop()  # and its output file goes

    def restart(self, down: float = 0) -> None:
        """Down (for ``down`` seconds) and up again, empty (no persistence), as a Redis
        restart in production."""
        self.stop()
        time.sleep(down)
        self.start()
