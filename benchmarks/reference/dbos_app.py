"""The benchmark workloads on DBOS (PyPI ``dbos``): durable workflows on SQLite, in one process.

Run by the suite in its own virtual environment (``benchmarks/.venvs/dbos``) as
``python dbos_app.py WORKLOAD N REPEATS WARMUP``; see ``_protocol.py`` for what it prints.
Written with DBOS's documented API: ``@DBOS.workflow()``, ``@DBOS.step()``, ``Queue``,
``DBOS(config=...)``, ``DBOS.launch()``. The system database is a fresh SQLite file (DBOS's
default: rollback journal, ``synchronous=FULL``), so every step is committed before it is used.
"""

from __future__ import annotations

import time

began = time.perf_counter()

import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

from _protocol import main  # noqa: E402
from dbos import DBOS, DBOSConfig, Queue  # noqa: E402

#: Parallel work goes through a queue (registered after launch), DBOS's way to fan out.
queue: Queue


@DBOS.workflow()
def noop() -> int:
    return 0


@DBOS.step()
def inc_step(x: int) -> int:
    return x + 1


@DBOS.workflow()
def inc(x: int) -> int:
    return x + 1


@DBOS.step()
def total(values: list[int]) -> int:
    return sum(values)


@DBOS.workflow()
def bench_map(n: int) -> int:
    """A map: one child workflow per item, enqueued, results gathered in order."""
    handles = [queue.enqueue(inc, i) for i in range(n)]
    return sum(h.get_result() for h in handles)


@DBOS.workflow()
def bench_sequential(n: int) -> int:
    """n durable steps, one after another."""
    result = 0
    for i in range(n):
        result += inc_step(i)
    return result


@DBOS.workflow()
def bench_fanout(n: int) -> int:
    """Fan out n child workflows over the queue, fan in their results, then a reduce step."""
    handles = [queue.enqueue(inc, i) for i in range(n)]
    return total([h.get_result() for h in handles])


if __name__ == "__main__":
    folder = tempfile.mkdtemp(prefix="cove-bench-dbos-")
    config: DBOSConfig = {
        "name": "cove-bench",
        "system_database_url": f"sqlite:///{os.path.join(folder, 'dbos.sqlite')}",
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()
    # The poll interval is lowered from its 1 s default so that a small fan-out is not
    # dominated by waiting for the next poll.
    queue = DBOS.register_queue("bench", polling_interval_sec=0.05)
    try:
        main(
            began,
            {
                "noop": lambda n: noop(),
                "map": bench_map,
                "sequential": bench_sequential,
                "fanout": bench_fanout,
            },
        )
    finally:
        DBOS.destroy()
    sys.exit(0)
