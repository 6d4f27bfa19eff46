"""daphne under cProfile, switched on and off by signals: the bench's ``BENCH_PROFILE`` hook.

``python -m bench.profiled PREFIX DAPHNE-ARGS...`` serves like ``daphne DAPHNE-ARGS``.
SIGUSR1 starts profiling (every thread: Python 3.12+ profiles through ``sys.monitoring``);
SIGUSR2 stops and writes the profile to the path the file ``PREFIX.next`` names (the bench writes
it first). Each measured phase of a scenario gets its own ``.prof`` file, without the setup
around it; a phase measured in several pieces (one per timed run) accumulates into one file.
"""

from __future__ import annotations

import cProfile
import signal
import sys
from pathlib import Path
from types import FrameType

from daphne.cli import CommandLineInterface


def main(prefix: str, arguments: list[str]) -> None:
    profiler = cProfile.Profile()
    phase = [""]

    def start(signum: int, frame: FrameType | None) -> None:
        target = Path(f"{prefix}.next").read_text().strip()
        if target != phase[0]:
            profiler.clear()
            phase[0] = target
        profiler.enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        profiler.disable()
        profiler.dump_stats(phase[0])

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    CommandLineInterface().run(arguments)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
