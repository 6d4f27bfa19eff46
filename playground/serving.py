"""How `make run` serves: one daphne, or N sharing one listening socket under supervisord.

One process is today's embedded mode: the channel layer and the context store in memory, the
simulator mounted at /v1/ in the process. N processes (WORKERS, by default the cores when Redis
is configured) are the Channels deployment docs' setup: supervisord opens the socket once and
hands it to each daphne as file descriptor 0 (``--fd 0``), so the kernel spreads connections
over them, one port, no proxy. They share sessions through Redis; the simulator then runs as a
process of its own (an embedded one would be N simulators, each with its own key and cache,
behind one port).
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUPERVISORD_CONFIG = ROOT / "deploy" / "supervisord.conf"
# A storm of connects is not left to the kernel's SYN retries (Twisted's default is 50).
LISTEN_BACKLOG = 4096
MAX_WS_BYTES = 64 * 1024 * 1024
# daphne's options after where it listens, the same for one process and for N. Verbosity 0:
# no access log of daphne's own, which is written straight to stdout (a share link's token in
# an old-form path included); the app logs one line per request and per socket instead
# (playground/access_log.py), redacted, in LOG_FORMAT.
DAPHNE_OPTIONS = (
    *("--verbosity", "0"),
    *("--websocket-max-message-size", str(MAX_WS_BYTES)),
    *("--websocket-max-frame-size", str(MAX_WS_BYTES)),
)
APPLICATION = "playground.asgi:application"


class ServeError(Exception):
    """Why the processes cannot start, in words for the person who ran `make run`."""


def endpoint(host: str, port: int) -> str:
    interface = host.replace(":", r"\:")  # Twisted's endpoint syntax escapes an IPv6 colon
    return f"tcp:port={port}:interface={interface}:backlog={LISTEN_BACKLOG}"


def daphne_argv(daphne: Path, host: str, port: int, *options: str) -> list[str]:
    """One daphne listening itself (WORKERS=1); ``options`` go before the application."""
    return [str(daphne), "--endpoint", endpoint(host, port), *DAPHNE_OPTIONS, *options, APPLICATION]


def default_workers(redis_url: str) -> int:
    """The cores, when the processes can share sessions (Redis); else the one embedded process."""
    return (os.cpu_count() or 1) if redis_url else 1


def check_redis(redis_url: str, workers: int) -> None:
    """N processes share sessions through Redis: refuse to start without it, saying so."""
    if not redis_url:
        raise ServeError(
            f"WORKERS={workers} starts {workers} processes, which share sessions through Redis: "
            "set REDIS_URL (e.g. REDIS_URL=redis://127.0.0.1:6379/0), or WORKERS=1."
        )
    import redis  # only here: a one-process start never needs it

    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3).ping()
    except redis.RedisError as exc:
        raise ServeError(
            f"REDIS_URL does not answer ({type(exc).__name__}: {exc}); WORKERS={workers} needs it."
        ) from exc


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Plan:
    """What supervisord is started with: its config and environment."""

    argv: list[str]
    env: dict[str, str]


def supervised(
    bin_dir: Path, run_dir: Path, host: str, port: int, workers: int, embedded: bool, profile: str
) -> Plan:
    """supervisord (in the foreground) running ``workers`` daphnes on one socket, and the
    simulator on a port of its own when the upstream would have been the embedded one."""
    env = {
        "PLAYGROUND_BIN": str(bin_dir),
        "PLAYGROUND_RUN_DIR": str(run_dir),
        "HOST": host,
        "PORT": str(port),
        "WORKERS": str(workers),
        "SIMULATOR_AUTOSTART": "true" if embedded else "false",
        "SIMULATOR_PORT": "0",
        "SIMULATOR_PROFILE": profile,
    }
    if embedded:
        key = secrets.token_urlsafe(32)  # known to these processes alone, never printed
        simulator_port = free_port("127.0.0.1")
        env |= {
            "SIMULATOR_PORT": str(simulator_port),
            "SIMULATOR_API_KEY": key,
            "OPENAI_API_KEY": key,
            "UPSTREAM_BASE_URL": f"http://127.0.0.1:{simulator_port}/v1",
            "UPSTREAM_MODEL": os.environ.get("UPSTREAM_MODEL", "sim"),
        }
    argv = [str(bin_dir / "supervisord"), "--nodaemon", "--configuration", str(SUPERVISORD_CONFIG)]
    return Plan(argv, env)
