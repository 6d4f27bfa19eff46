"""One site served by several daphne processes, started the way docs/deployment.md says: a
PostgreSQL database migrated once, Redis, the same environment for every process.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import psycopg

from tests.liveserver import LiveServer
from tests.services import POSTGRES_URL, REDIS_URL, require_postgres, require_redis
from tests.simserver import SimServer


@dataclass
class Cluster:
    upstream: SimServer
    size: int = 2
    env: dict[str, str] = field(default_factory=dict)
    redis_url: str = REDIS_URL
    servers: list[LiveServer] = field(default_factory=list)
    database: str = field(default_factory=lambda: f"playground_{uuid.uuid4().hex[:12]}")

    @property
    def database_url(self) -> str:
        return POSTGRES_URL.rsplit("/", 1)[0] + "/" + self.database

    def start(self) -> Cluster:
        require_redis()
        require_postgres()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{self.database}"')
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
        for number in range(self.size):
            server = LiveServer(env=dict(env), migrate=number == 0)
            self.servers.append(server)
            server.start()
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def output(self) -> str:
        return "\n".join(f"--- process {n}\n{s.output()}" for n, s in enumerate(self.servers))


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
