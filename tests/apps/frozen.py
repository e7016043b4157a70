"""Workloads for frozen processes (tests/e2e/test_frozen_replica.py and
test_frozen_container.py).

``frozen_job``: a map of quick calls, then a map of slow ones that report progress and print
a line every 0.1 s, naming their container's pid, until a ``go`` file appears beside the
log; each returns its pid, so the request's output says which containers ran them.
``stalling``: writes its pid to a marker file on its first attempt, then sleeps (the test
freezes that container); a later attempt answers at once.
"""

import os
import time
from pathlib import Path

from cove import RequestContext, Retries, application, function


def _record(log: str, tag: str) -> None:
    ctx = RequestContext.get()
    line = f"{ctx.request_id} {ctx.function_call_id} {tag}\n".encode()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@function()
def quick(item: tuple[str, int]) -> int:
    log, x = item
    _record(log, f"done quick{x}")
    return x * x


@function()
def slow(item: tuple[str, int]) -> int:
    log, x = item
    pid = os.getpid()
    _record(log, f"start slow{x} {pid}")
    go = Path(log).with_name("go")
    ticks = 0
    while not go.exists():
        ticks += 1
        RequestContext.get().progress.update(ticks, ticks + 1, f"pid {pid}")
        print(f"pid {pid} tick {ticks}", flush=True)
        time.sleep(0.1)
    _record(log, f"done slow{x} {pid}")
    return pid


@application()
@function()
def frozen_job(log: str, n: int) -> dict[str, list[int]]:
    squares = quick.map([(log, x) for x in range(n)])
    pids = slow.map([(log, x) for x in range(n)])
    return {"squares": squares, "pids": pids}


@application()
@function(timeout=2, retries=Retries(max_retries=1))
def stalling(marker: str) -> dict[str, int]:
    pid = os.getpid()
    path = Path(marker)
    first = not path.exists()
    with open(path, "a") as f:
        f.write(f"{pid}\n")
    if first:
        time.sleep(60)  # frozen by the test meanwhile; its timeout fires first
    return {"pid": pid}
