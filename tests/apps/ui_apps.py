"""Applications the dashboard tests watch: gated steps, retries, files, hostile text."""

import time
from pathlib import Path

from cove import File, RequestContext, Retries, application, function


@function()
def work(i: int) -> int:
    print(f"working on step {i}")
    return i * 10


@application()
@function()
def stepper(gate: str, steps: int) -> int:
    """Runs ``steps`` steps; step i waits for the file ``gate``/i (the test creates it),
    calls ``work`` and reports progress."""
    ctx = RequestContext.get()
    ctx.progress.update(0, steps, "waiting")
    total = 0
    for i in range(1, steps + 1):
        print(f"waiting for step {i}", flush=True)
        while not (Path(gate) / str(i)).exists():
            time.sleep(0.02)  # the test's signal is a file another process creates
        total += work(i)
        ctx.metrics.counter("steps")
        ctx.progress.update(i, steps, f"step {i} done")
    return total


@function()
def flaky() -> str:
    ctx = RequestContext.get()
    tries = ctx.state.get("tries", 0) or 0
    ctx.state.set("tries", tries + 1)
    print(f"flaky try {tries + 1}")
    if tries < 1:
        raise RuntimeError(f"flaky failure {tries + 1}")
    return "steady"


@application(retries=Retries(max_retries=2, initial_delay=0.01))
@function()
def retried() -> str:
    """One child call that fails once, then succeeds: two attempts of ``flaky``."""
    return flaky()


@application()
@function()
def echo(text: str) -> dict[str, str]:
    """Prints, stores, measures and returns its (hostile) text."""
    ctx = RequestContext.get()
    print(text)
    ctx.state.set(text, 1)
    ctx.metrics.counter(text)
    ctx.progress.update(1, 1, text)
    return {"echo": text}


@application()
@function()
def failing(reason: str) -> str:
    raise RuntimeError(reason)


@application()
@function()
def shout(doc: File) -> File:
    return File(doc.content.upper(), "text/plain")
