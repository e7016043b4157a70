"""Applications the benchmark deploys to a Cove server.

This file is uploaded as-is (``POST /applications``), so it imports only ``cove`` and
the standard library.
"""

import time

from cove import application, function


@application(tags={"suite": "benchmarks"})
@function(description="Does nothing: the round trip of a request with no child calls.")
def bench_noop() -> int:
    return 0


@function(description="The trivial child function the fan-out benchmarks call.")
def inc(x: int) -> int:
    return x + 1


@application(tags={"suite": "benchmarks"})
@function(description="Fan-out: n parallel calls of inc through map.")
def bench_map(n: int) -> int:
    return sum(inc.map(range(n)))


@application(tags={"suite": "benchmarks"})
@function(description="n blocking child calls of inc, one after another.")
def bench_sequential(n: int) -> int:
    total = 0
    for i in range(n):
        total += inc(i)
    return total


@function(max_containers=8, description="Sleeps a little, so a map needs many containers.")
def cold(x: int) -> int:
    time.sleep(0.2)
    return x


@application(tags={"suite": "benchmarks"})
@function(description="Cold starts: a map that starts up to 8 containers of cold.")
def bench_cold(n: int) -> int:
    return sum(cold.map(range(n)))


# A busy container holds its cpu while it runs a call. This one sleeps, so it asks for a
# quarter of a core: all 8 containers run at once on 2 cores (with the default 1.0, two would).
@function(
    warm_containers=4, max_containers=8, cpu=0.25, description="A short call with a warm pool."
)
def bursty(x: int) -> int:
    time.sleep(0.05)
    return x


@application(tags={"suite": "benchmarks"})
@function(description="Burst: many concurrent requests against a warm, bounded pool.")
def bench_burst(x: int) -> int:
    return bursty(x)


@function(description="The reduce step of the fan-out benchmark: one call over every result.")
def total(values: list[int]) -> int:
    return sum(values)


@application(tags={"suite": "benchmarks"})
@function(description="Fan-out/fan-in: n separate calls of inc started at once, then a reduce.")
def bench_fanout(n: int) -> int:
    futures = [inc.future(i).run() for i in range(n)]
    return total([f.result() for f in futures])


@application(tags={"suite": "benchmarks"})
@function(warm_containers=1, description="Warm start: its container starts before any call.")
def bench_warm() -> int:
    return 0
