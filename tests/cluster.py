"""One site served by several daphne processes, started the way docs/deployment.md says: a
PostgreSQL database migrated once, Redis, the same environment for every process.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg

from devtools.processes import child_env, manage, run
from tests.liveserver import LiveServer
from tests.services import POSTGRES_URL, REDIS_URL, require_postgres, require_redis
from tests.simserver import SimServer


def database_url(name: str) -> str:
    return POSTGRES_URL.rsplit("/", 1)[0] + "/" + name


def new_database_name() -> str:
    return f"playground_{uuid.uuid4().hex[:12]}"


def drop_database(name: str) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def migrated_template() -> Iterator[str]:
    """A database migrated once, that clusters copy (``Cluster.template``): CREATE DATABASE
    ... TEMPLATE copies its files in a tenth of a second, where each migrate costs a process
    importing Django and some 3 s of CPU."""
    require_postgres()
    name = new_database_name()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        run(manage("migrate", "--no-input"), child_env(DATABASE_URL=database_url(name)))
        yield name
    finally:
        drop_database(name)


@dataclass
class Cluster:
    upstream: SimServer
    size: int = 2
    env: dict[str, str] = field(default_factory=dict)
    redis_url: str = REDIS_URL
    # A migrated database to copy (migrated_template()); None: the first process migrates.
    template: str | None = None
    servers: list[LiveServer] = field(default_factory=list)
    database: str = field(default_factory=new_database_name)

    @property
    def database_url(self) -> str:
        return database_url(self.database)

    def start(self) -> Cluster:
        require_redis()
        require_postgres()
        copy = f' TEMPLATE "{self.template}"' if self.template else ""
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{self.database}"{copy}')
        env = {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "UPSTREAM_BASE_URL": self.upstream.base_url,
            "OPENAI_API_KEY": self.upstream.api_key,
            "UPSTREAM_MODEL": "sim",
            "DEBUG": "false",
            "SECRET_KEY": "cluster-test-" + uuid.uuid4().hex,
            **self.env,
        }
        migrate = self.template is None
        servers = [LiveServer(env=dict(env), migrate=migrate and n == 0) for n in range(self.size)]
        self.servers.extend(servers)  # stop() stops them, whichever failed to start
        if migrate:
            servers.pop(0).start()  # the others may only serve once the schema is there
        # The rest at once: each spends a second or two importing Django before it answers.
        together(LiveServer.start, servers)
        return self

    def stop(self) -> None:
        try:
            together(LiveServer.stop, self.servers)  # each waits for its process to exit
        finally:
            drop_database(self.database)

    def output(self) -> str:
        return "\n".join(f"--- process {n}\n{s.output()}" for n, s in enumerate(self.servers))


def together(method: Callable[[LiveServer], object], servers: list[LiveServer]) -> None:
    """``method(server)`` for every server in threads of their own; the first error raised, once
    all have returned."""
    if not servers:
        return
    with ThreadPoolExecutor(len(servers)) as pool:
        for future in [pool.submit(method, server) for server in servers]:
            future.result()


def items(cluster: Cluster, session_id: str) -> list[dict[str, object]]:
    """The session's transcript in the cluster's database, in order."""
    query = (
        "SELECT position, data, status, in_context FROM agents_item"
        " WHERE session_id = %s ORDER BY position"
    )
    with psycopg.connect(cluster.database_url) as connection:
        rows = connection.execute(query, (session_id,)).fetchall()
    return [{"position": p, "data": d, "status": s, "in_context": c} for p, d, s, c in rows]


def steps(cluster: Cluster, session_id: str) -> list[dict[str, object]]:
    query = "SELECT response_id, mode, status FROM agents_step WHERE session_id = %s ORDER BY id"
    with psycopg.connect(cluster.database_url) as connection:
        rows = connection.execute(query, (session_id,)).fetchall()
    return [{"response_id": r, "mode": m, "status": s} for r, m, s in rows]
