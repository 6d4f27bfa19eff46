"""The real services some tests need: skip without them locally, fail without them in CI."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
import redis

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
