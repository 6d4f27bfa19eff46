"""An anonymous owner's Django session key is a credential: the database keeps only its SHA-256,
and the admin shows nothing of it (issue 11, item 10)."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from agents.models import Session
from tests.test_pages import new_session_of


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.django_db
def test_the_database_keeps_only_a_hash_of_the_browsers_session_key() -> None:
    browser = Client()
    session = new_session_of(browser)
    key = str(browser.session.session_key)
    row = Session.objects.filter(pk=session.pk).values().get()
    assert key not in {str(value) for value in row.values()}
    assert row["browser_key"] == sha256(key)
    # The browser still sees its session, and it alone.
    assert browser.get(f"/sessions/{session.pk}/").status_code == 200
    assert Client().get(f"/sessions/{session.pk}/").status_code == 404


@pytest.mark.django_db
def test_an_imported_session_keeps_only_a_hash_of_the_browsers_session_key() -> None:
    browser = Client()
    exported = browser.get(f"/sessions/{new_session_of(browser).pk}/export/").content
    key = str(browser.session.session_key)
    upload = SimpleUploadedFile("s.json", exported, "application/json")
    response = browser.post("/sessions/import/", {"file": upload})
    assert response.status_code == 302
    assert not Session.objects.filter(browser_key=key).exists()
    assert Session.objects.filter(browser_key=sha256(key)).count() == 2


@pytest.mark.django_db
def test_the_admin_shows_nothing_of_the_browser_key(admin_client: Client) -> None:
    browser = Client()
    session = new_session_of(browser)
    key = str(browser.session.session_key)
    stored = Session.objects.get(pk=session.pk).browser_key
    for url in ("/admin/agents/session/", f"/admin/agents/session/{session.pk}/change/"):
        page = admin_client.get(url)
        assert page.status_code == 200
        html = page.content.decode()
        assert key not in html
        assert stored not in html
        assert "browser" not in html.lower()


@pytest.mark.django_db(transaction=True)
def test_the_migration_hashes_the_keys_already_stored() -> None:
    executor = MigrationExecutor(connection)
    before = [("agents", "0003_sharelink")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps.get_model("agents", "Session")
    anonymous = old.objects.create(browser_key="k" * 32, model="sim")
    owned = old.objects.create(browser_key="", model="sim")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes("agents"))

    assert Session.objects.get(pk=anonymous.pk).browser_key == sha256("k" * 32)
    assert Session.objects.get(pk=owned.pk).browser_key == ""
