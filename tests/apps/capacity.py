"""Functions whose cpu and memory fill a small machine: the server must queue, not overcommit."""

import os
import time

from cove import application, function


@function(cpu=1, max_containers=6)
def crunch(seconds: float) -> dict[str, float]:
    start = time.time()
    time.sleep(seconds)
    return {"start": start, "end": time.time(), "pid": os.getpid()}


@application()
@function(cpu=1)
def fan_out(n: int) -> list[dict[str, float]]:
    return crunch.map([0.4] * n)


@function(cpu=1)
def leaf(x: int) -> int:
    return x + 1


@function(cpu=1)
def middle(x: int) -> int:
    return leaf(x) * 2


@application()
@function(cpu=1)
def nested(x: int) -> int:
    return middle(x) + 1


@function(memory=2)
def big_a(x: int) -> int:
    return os.getpid()


@function(memory=2)
def big_b(x: int) -> int:
    return os.getpid()


@application()
@function(memory=1)
def big_pair(x: int) -> list[int]:
    return [big_a(x), big_b(x), big_a(x)]
