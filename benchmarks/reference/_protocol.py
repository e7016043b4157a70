"""What the reference workloads print: one JSON object a line on stdout (standard library only).

Each reference file runs in its own virtual environment as
``python <file> WORKLOAD N REPEATS WARMUP`` and prints, in order:

- ``{"event": "ready", "startup_s": ...}`` once the system is imported and launched;
- ``{"event": "run", "seconds": ...}`` after each timed run (so a run that is stopped at its
  time box still reports the runs it finished);
- ``{"event": "done", "peak_rss_mb": ...}`` at the end.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

WORKLOADS = ("noop", "map", "sequential", "fanout")


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def peak_rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def expected(workload: str, n: int) -> int:
    """Every workload sums ``inc(i) = i + 1`` over ``range(n)``; noop returns 0."""
    return 0 if workload == "noop" else n * (n + 1) // 2


def main(began: float, runners: dict[str, Callable[[int], Any]]) -> None:
    """Parse ``WORKLOAD N REPEATS WARMUP``, run warm-ups then timed runs, check each answer.

    Warm-ups use at most 10 items: they pay for what a first run pays once (threads, pools,
    queues, caches), not for the size.
    """
    workload, n, repeats, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    run = runners[workload]
    want = expected(workload, n)
    emit("ready", startup_s=round(time.perf_counter() - began, 3))
    for _ in range(warmup):
        run(min(n, 10))
    for _ in range(repeats):
        start = time.perf_counter()
        value = run(n)
        seconds = time.perf_counter() - start
        if value != want:
            emit("error", message=f"wrong output {value!r}, expected {want!r}")
            sys.exit(1)
        emit("run", seconds=round(seconds, 6))
    emit("done", peak_rss_mb=peak_rss_mb())
