"""Failure paths that must end, and payloads that must leave the journal's rows."""

import os
import subprocess
import time
from pathlib import Path

from cove import RequestContext, application, cls, function


@application()
@function()
def big_output(size: int) -> str:
    return "x" * size


@cls()
class Broken:
    def __init__(self) -> None:
        raise RuntimeError("model weights missing")

    @function()
    def predict(self, x: int) -> int:
        return x


@application()
@function()
def uses_broken(x: int) -> int:
    return Broken().predict(x)


@function()
def crasher(x: int) -> int:
    os._exit(3)


@application()
@function()
def crashes(x: int) -> int:
    return crasher(x)


@application()
@function()
def spawner(pid_file: str) -> str:
    child = subprocess.Popen(["sleep", "600"])
    Path(pid_file).write_text(str(child.pid))
    time.sleep(600)
    return "never"


@function(timeout=1)
def sleepy(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@application()
@function(timeout=2)
def waits_on_slow_child(seconds: float) -> float:
    # The parent's own timeout (2 s) does not run while it waits for its child.
    return sleepy(seconds) + patient(3.0)


@function(timeout=10)
def patient(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@application()
@function()
def times_out(seconds: float) -> float:
    return sleepy(seconds)


@function(timeout=1)
def reports_progress(seconds: float) -> str:
    ctx = RequestContext.get()
    steps = int(seconds / 0.25)
    for i in range(steps):
        time.sleep(0.25)
        ctx.progress.update(i + 1, steps)  # each update resets the 1 s timeout
    return "finished"


@application()
@function()
def long_with_progress(seconds: float) -> str:
    return reports_progress(seconds)
