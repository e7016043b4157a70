"""Where and how calls run: processes, containers, parallelism."""

import os
import time

from cove import application, function


@function()
def whereami(_: int) -> int:
    time.sleep(0.2)
    return os.getpid()


@application()
@function()
def pids(n: int) -> dict[str, list[int]]:
    return {"app": [os.getpid()], "children": whereami.map(range(n))}


@function()
def trivial(x: int) -> int:
    return x + 1


@application()
@function()
def many_sequential(n: int) -> list[int]:
    return [os.getpid() for _ in range(1)] + [trivial(i) for i in range(n)]
