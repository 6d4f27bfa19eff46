"""Plain SQL for the few statements every socket's connect runs.

A storm of connects runs each of them a thousand times, and building and compiling the ORM's
query cost several times running it (an ownership check: ~0.3 ms of the event loop's core
through the ORM, a tenth of that as a statement). Table and column names come from the models'
metadata, quoted by the connection; every value is a parameter.
"""

from __future__ import annotations

from typing import Any

from django.db import connection

from agents.models import Item, Session

VENDORS_WITH_RETURNING = ("sqlite", "postgresql")


def _session_key(session_id: str) -> Any:
    pk = Session._meta.pk
    assert pk is not None
    return pk.get_db_prep_value(pk.to_python(session_id), connection)


def _names() -> tuple[str, str, str, str]:
    """The sessions table and its key column, the items table and its session column."""
    quote = connection.ops.quote_name
    pk = Session._meta.pk
    assert pk is not None
    assert pk.column is not None
    sessions, items = quote(Session._meta.db_table), quote(Item._meta.db_table)
    return sessions, quote(pk.column), items, quote(Item.session.field.column)


def owned_anonymously(session_id: str, browser_key: str) -> bool:
    """Whether the session has no owner and the anonymous browser ``browser_key`` (a hash)."""
    sessions, pk, _, _ = _names()
    owner = connection.ops.quote_name(Session.owner.field.column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {sessions} WHERE {pk} = %s AND {owner} IS NULL AND browser_key = %s",
            [_session_key(session_id), browser_key],
        )
        return cursor.fetchone() is not None


def raise_fence_and_base(session_id: str) -> tuple[int, int]:
    """The session's fence raised by one, and the position after its last item; two statements
    (with ``RETURNING``: SQLite and PostgreSQL only, see :data:`VENDORS_WITH_RETURNING`)."""
    sessions, pk, items, session_column = _names()
    key = _session_key(session_id)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {sessions} SET fence = fence + 1 WHERE {pk} = %s RETURNING fence", [key]
        )
        row = cursor.fetchone()
        if row is None:
            raise Session.DoesNotExist(f"No session {session_id}")
        cursor.execute(f"SELECT MAX(position) FROM {items} WHERE {session_column} = %s", [key])
        top = cursor.fetchone()[0]
    return int(row[0]), 0 if top is None else int(top) + 1
