"""``manage.py simulator``: the Responses simulator as a standalone server."""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import uvicorn
from django.core.management.base import BaseCommand, CommandError, CommandParser

from simulator import PROFILES, CostModel, Simulator, SimulatorConfig

API_KEY_ENV = "SIMULATOR_API_KEY"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # the transport's cap; the simulator answers >16 MiB itself


def override_costs(costs: CostModel, pairs: list[str]) -> CostModel:
    knobs = {f.name for f in dataclasses.fields(CostModel)}
    changes: dict[str, float] = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in knobs:
            raise CommandError(f"Unknown cost knob {name!r}; known: {', '.join(sorted(knobs))}.")
        try:
            changes[name] = float(value)
        except ValueError as exc:
            raise CommandError(f"--cost {pair!r}: {value!r} is not a number.") from exc
    return dataclasses.replace(costs, **changes)


class Command(BaseCommand):
    help = "Serve the offline Responses API simulator (WebSocket mode and HTTP) on its own port."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--profile", choices=PROFILES, default="zero")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--api-key",
            action="append",
            default=[],
            dest="api_keys",
            help="Accept only this key (repeatable). Without it, any non-empty key is accepted.",
        )
        parser.add_argument(
            "--max-age", type=float, default=3600.0, help="Connection age limit (s)."
        )
        parser.add_argument("--time-scale", type=float, default=1.0, help="Multiply every delay.")
        parser.add_argument(
            "--no-lanes", action="store_true", help="One FIFO per connection (xAI)."
        )
        parser.add_argument(
            "--record-sends",
            action="store_true",
            help="Log when each delta was sent (CLOCK_MONOTONIC), for benchmarks: the 'sends' "
            "of GET /v1/_sim/connections/{id}.",
        )
        parser.add_argument(
            "--cost",
            action="append",
            default=[],
            metavar="KNOB=MS",
            help="Override one cost-model knob, e.g. --cost hydrate_ms=300 (repeatable).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        config = SimulatorConfig.for_profile(
            options["profile"],
            seed=options["seed"],
            # SIMULATOR_API_KEY: a key kept out of the process list (make run with WORKERS > 1).
            api_keys=frozenset(options["api_keys"] or filter(None, [os.environ.get(API_KEY_ENV)])),
            max_age_s=options["max_age"],
            lanes=not options["no_lanes"],
            time_scale=options["time_scale"],
            record_sends=options["record_sends"],
        )
        config = dataclasses.replace(config, costs=override_costs(config.costs, options["cost"]))
        host, port = options["host"], options["port"]
        self.stdout.write(
            f"Responses simulator ({config.profile}, seed {config.seed}): "
            f"http://{host}:{port}/v1 and ws://{host}:{port}/v1/responses",
        )
        self.stdout.flush()
        server = uvicorn.Config(
            Simulator(config),
            host=host,
            port=port,
            ws="websockets-sansio",
            ws_max_size=MAX_MESSAGE_BYTES,
            lifespan="off",
            log_level="warning",
        )
        logging.getLogger("uvicorn.error").addFilter(quiet_refusals)
        uvicorn.Server(server).run()


def quiet_refusals(record: logging.LogRecord) -> bool:
    # uvicorn's sans-io WebSocket protocol logs this error after every upgrade the app refuses
    # with an HTTP status (the ASGI denial response), which the fault model does on purpose.
    return "returned without completing handshake" not in record.getMessage()
