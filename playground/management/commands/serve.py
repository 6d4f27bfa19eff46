"""``manage.py serve``: what `make run` starts (playground/serving.py)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from playground import serving


class Command(BaseCommand):
    help = "Serve the playground: one daphne, or WORKERS daphnes on one socket (supervisord)."
    requires_system_checks: list[str] = []  # `make run` has just migrated, which checked

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="daphne processes (default: the cores with REDIS_URL set, else 1).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = options["host"], options["port"]
        workers = options["workers"] or serving.default_workers(settings.REDIS_URL)
        if workers < 1:
            raise CommandError("WORKERS must be 1 or more.")
        bin_dir = Path(sys.executable).parent
        os.environ["PORT"] = str(port)  # the embedded simulator is reached through it
        if workers == 1:
            argv = serving.daphne_argv(bin_dir / "daphne", host, port)
            self.stdout.write(f"Agent playground: http://{host}:{port}/ (one process)")
            self.stdout.flush()
            os.execv(argv[0], argv)
        try:
            serving.check_redis(settings.REDIS_URL, workers)
        except serving.ServeError as exc:
            raise CommandError(str(exc)) from exc
        # supervisord's pid file and control socket (supervisorctl finds them there).
        run_dir = Path(os.environ.get("PLAYGROUND_RUN_DIR") or tempfile.mkdtemp(prefix="pg-run-"))
        run_dir.mkdir(parents=True, exist_ok=True)
        plan = serving.supervised(
            bin_dir,
            run_dir,
            host,
            port,
            workers,
            settings.UPSTREAM_IS_EMBEDDED,
            settings.SIMULATOR_PROFILE,
        )
        self.stdout.write(
            f"Agent playground: http://{host}:{port}/ ({workers} processes on one socket, "
            f"supervisord; supervisorctl -c {serving.SUPERVISORD_CONFIG} with "
            f"PLAYGROUND_RUN_DIR={run_dir} controls them)"
        )
        self.stdout.flush()
        os.execve(plan.argv[0], plan.argv, {**os.environ, **plan.env})
