"""Anonymous owners' Django session keys were stored as they are: keep only their SHA-256.

Irreversible in effect: going back leaves the hashes, which open nothing (their browsers then
lose their sessions, as after clearing cookies)."""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import migrations


def hash_browser_keys(apps: Any, schema_editor: Any) -> None:
    Session = apps.get_model("agents", "Session")
    stored = Session.objects.exclude(browser_key="").values_list("pk", "browser_key")
    for pk, key in stored.iterator():
        digest = hashlib.sha256(key.encode()).hexdigest()
        Session.objects.filter(pk=pk).update(browser_key=digest)


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0003_sharelink"),
    ]

    operations = [
        migrations.RunPython(hash_browser_keys, migrations.RunPython.noop, elidable=True),
    ]
