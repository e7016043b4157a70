"""The benchmark workloads on the ``tensorlake`` SDK's local runner (PyPI ``tensorlake``).

Run by the suite in its own virtual environment (``benchmarks/.venvs/tensorlake``) as
``python tensorlake_app.py WORKLOAD N REPEATS WARMUP``; see ``_protocol.py`` for what it
prints. ``run_local_application`` runs every function call on threads of this one process,
with nothing journaled. The code is the same as ``benchmarks/apps.py`` with Tensorlake's
imports: ``from tensorlake.applications import application, function, run_local_application``.
"""

from __future__ import annotations

import time

began = time.perf_counter()

from _protocol import main  # noqa: E402
from tensorlake.applications import application, function, run_local_application  # noqa: E402


@application()
@function()
def bench_noop() -> int:
    return 0


@function()
def inc(x: int) -> int:
    return x + 1


@function()
def total(values: list[int]) -> int:
    return sum(values)


@application()
@function()
def bench_map(n: int) -> int:
    return sum(inc.map(list(range(n))))


@application()
@function()
def bench_sequential(n: int) -> int:
    result = 0
    for i in range(n):
        result += inc(i)
    return result


@application()
@function()
def bench_fanout(n: int) -> int:
    futures = [inc.future(i).run() for i in range(n)]
    return total([f.result() for f in futures])


def _request(app: object, *args: int) -> int:
    value: int = run_local_application(app, *args).output()  # type: ignore[arg-type]
    return value


if __name__ == "__main__":
    main(
        began,
        {
            "noop": lambda n: _request(bench_noop),
            "map": lambda n: _request(bench_map, n),
            "sequential": lambda n: _request(bench_sequential, n),
            "fanout": lambda n: _request(bench_fanout, n),
        },
    )
