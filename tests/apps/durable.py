"""A workload for crash tests: sequential steps, a map and request state.

Every function appends its durable call id to a side-effect log when its body finishes,
so a test can count how often each finished call ran. Step ``block_at`` waits for a
``go`` file beside the log the first time, so a test can kill the server at a known point.
"""

import os
import time
from pathlib import Path

from cove import RequestContext, application, function


def _record(log: str, tag: str) -> None:
    ctx = RequestContext.get()
    line = f"{ctx.request_id} {ctx.function_call_id} {tag}\n".encode()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@function()
def step(log: str, i: int, block_at: int) -> int:
    _record(log, f"start step{i}")
    if i == block_at:
        go = Path(log).with_name("go")
        while not go.exists():
            time.sleep(0.02)
    _record(log, f"done step{i}")
    return i * 10


@function()
def square(item: tuple[str, int]) -> int:
    log, x = item
    _record(log, f"done square{x}")
    return x * x


@function()
def stamp(log: str) -> str:
    value = RequestContext.get().state.get("marker", "missing")
    _record(log, "done stamp")
    return str(value)


@application()
@function()
def durable_job(log: str, steps: int, block_at: int = -1) -> dict[str, object]:
    RequestContext.get().state.set("marker", "kept")
    total = 0
    for i in range(steps):
        total += step(log, i, block_at)
    squares = square.map([(log, x) for x in range(steps)])
    return {"total": total, "squares": squares, "stamp": stamp(log)}
