"""Applications to watch: progress, logs, metrics, retries and timeouts."""

import logging
import os
import sys
import time
from pathlib import Path

from cove import RequestContext, Retries, application, function

log = logging.getLogger("watched")


@function()
def square(x: int) -> int:
    print(f"squaring {x}")
    print(f"warning about {x}", file=sys.stderr)
    log.info("logged %d", x)
    RequestContext.get().metrics.counter("squares")
    return x * x


@application()
@function()
def fan(n: int) -> int:
    """Squares 0..n-1 in parallel, reporting progress after each step."""
    ctx = RequestContext.get()
    print("fan starts")
    ctx.progress.update(0, n, "starting")
    total = 0
    for i, value in enumerate(square.map(list(range(n)))):
        total += value
        ctx.progress.update(i + 1, n, f"summed {i + 1}")
    ctx.metrics.timer("fan_seconds", 0.5)
    ctx.metrics.timer("fan_seconds", 1.5)
    ctx.metrics.counter("items", n)
    return total


@application()
@function()
def gated(gate: str) -> str:
    """Waits for the file ``gate`` to exist (a test creates it), reporting progress."""
    ctx = RequestContext.get()
    ctx.progress.update(1, 2, "waiting for the gate")
    print("waiting for the gate")
    while not Path(gate).exists():
        time.sleep(0.02)  # the test's signal is a file another process creates
    ctx.progress.update(2, 2, "through")
    print("through the gate")
    return "opened"


@function()
def shaky() -> str:
    ctx = RequestContext.get()
    tries = ctx.state.get("tries", 0) or 0
    ctx.state.set("tries", tries + 1)
    print(f"shaky try {tries + 1}")
    if tries < 2:
        raise RuntimeError(f"shaky failure {tries + 1}")
    return "steady"


@application(retries=Retries(max_retries=3, initial_delay=0.01))
@function()
def wobbly() -> str:
    return shaky()


@function(timeout=1)
def sleepy() -> str:
    print(f"sleepy in {os.getpid()}", flush=True)
    time.sleep(30)
    return "never"


@application()
@function()
def overslept() -> str:
    return sleepy()


@application()
@function()
def bulky(size: int) -> str:
    return "x" * size
