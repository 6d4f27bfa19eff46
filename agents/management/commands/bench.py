"""``manage.py bench``: the benchmark suite (docs/benchmarks.md)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bench.results import Table, results_page
from bench.sizes import FULL, SMOKE
from bench.suite import run_suite, scenarios


class Command(BaseCommand):
    help = (
        "Run the benchmark suite (or the named scenarios): the playground against direct clients "
        "and raw servers, each with its own simulator and daphne on loopback."
    )
    # Its servers are child processes, each with its own settings and the collected static
    # files (devtools/static.py): this process serves nothing, so the checks are theirs.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "scenario",
            nargs="*",
            help=f"Scenarios to run (default: all): {', '.join(scenarios())}.",
        )
        parser.add_argument("--json", metavar="FILE", help="Also write the results as JSON.")
        parser.add_argument(
            "--markdown",
            metavar="FILE",
            help="Also write the results page (docs/benchmark-results.md).",
        )
        parser.add_argument(
            "--smoke", action="store_true", help="Tiny sizes, targets not enforced (make test)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        known = scenarios()
        names = options["scenario"] or list(known)
        unknown = [name for name in names if name not in known]
        if unknown:
            raise CommandError(f"Unknown scenario {unknown[0]!r}; known: {', '.join(known)}.")
        sizes = SMOKE if options["smoke"] else FULL
        for noisy in ("httpx2", "httpx", "openai"):  # a line per introspection request otherwise
            logging.getLogger(noisy).setLevel(logging.WARNING)
        handler = logging.StreamHandler(self.stdout)
        handler.setFormatter(logging.Formatter("  %(relativeCreated)8.0f ms  %(message)s"))
        progress_log = logging.getLogger("bench")
        progress_log.addHandler(handler)
        progress_log.propagate = False

        def progress(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        report = asyncio.run(run_suite(names, sizes, progress))
        table = Table(report.rows)
        self.stdout.write("")
        self.stdout.write(table.text())
        summary = report.as_dict()
        counts, machine, load = summary["summary"], summary["machine"], summary["load_average"]
        self.stdout.write(
            f"\n{machine['cores']} x {machine['cpu']}, Python {machine['python']}, "
            f"load average {load['before']:.2f} before, {load['after']:.2f} after"
        )
        self.stdout.write(
            f"\n{len(names)} scenario(s) in {report.seconds:.1f} s: {counts['pass']} passed, "
            f"{counts['fail']} failed, {counts['info']} informational, {counts['not_run']} not run"
            + (", targets not enforced (smoke run)" if report.smoke else "")
        )
        if options["json"]:
            Path(options["json"]).write_text(json.dumps(report.as_dict(), indent=2) + "\n")
        if options["markdown"]:
            Path(options["markdown"]).write_text(results_page(table.markdown()))
        if report.errors:
            raise CommandError(
                "Some scenarios failed to run: "
                + "; ".join(f"{name}: {error}" for name, error in report.errors.items())
            )
