"""The PostgreSQL pass: ``make pytest`` runs the database tests (``-m "database and not e2e"``)
a second time with ``DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres``, one
``test_postgres_gw<N>`` database per xdist worker (pytest-django). Without PostgreSQL that pass
skips them, and fails under ``CI=true`` (``tests/markers.py``).

This test keeps that pass honest: it really is on PostgreSQL.
"""

from __future__ import annotations

import os

import dj_database_url
import pytest
from django.db import connection

VENDORS = {"django.db.backends.sqlite3": "sqlite", "django.db.backends.postgresql": "postgresql"}


@pytest.mark.django_db
def test_the_database_is_the_one_database_url_names() -> None:
    """The settings read ``DATABASE_URL``: the PostgreSQL pass is not SQLite under another name."""
    configured = dj_database_url.parse(os.environ.get("DATABASE_URL") or "sqlite://")
    assert connection.vendor == VENDORS[configured["ENGINE"]]
    if connection.vendor == "postgresql":
        assert connection.settings_dict["NAME"].startswith(f"test_{configured['NAME']}")
