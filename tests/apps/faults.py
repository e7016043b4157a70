"""Applications for the fault-tolerance tests. Files beside a ``work`` folder given as an
argument record side effects, and a ``fixed`` file there turns a failing step good."""

import os
import time
from pathlib import Path

from cove import RequestContext, RequestError, Retries, application, cls, function


def _mark(work: str, name: str) -> None:
    fd = os.open(Path(work) / "effects.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{name} {RequestContext.get().function_call_id}\n".encode())
    finally:
        os.close(fd)


@function(retries=Retries(max_retries=3, initial_delay=0.4, delay_multiplier=2, max_delay=1.0))
def fails_three_times(work: str) -> str:
    state = RequestContext.get().state
    seen = state.get("failures", 0)
    if seen < 3:
        state.set("failures", seen + 1)
        raise ValueError(f"planned failure {seen + 1}")
    return "ok"


@application()
@function()
def backoff(work: str) -> str:
    return fails_three_times(work)


@function()
def slow_step(work: str, seconds: float) -> str:
    Path(work, "started").write_text(str(os.getpid()))
    time.sleep(seconds)
    _mark(work, "slow_step")
    return "slept"


@application()
@function()
def slow(work: str, seconds: float) -> str:
    return slow_step(work, seconds)


@function(max_containers=1)
def queued_step(item: tuple[str, int]) -> int:
    work, i = item
    _mark(work, f"queued_step{i}")
    time.sleep(30)
    return i


@application()
@function()
def fan(work: str) -> list[int]:
    return queued_step.map([(work, i) for i in range(4)])


@function()
def stable(work: str) -> int:
    _mark(work, "stable")
    return 41


@function()
def fragile(work: str) -> int:
    if not Path(work, "fixed").exists():
        raise RuntimeError("not fixed yet")
    return 1


@application()
@function()
def repairable(work: str) -> int:
    return stable(work) + fragile(work)


@function(cpu=8)
def huge(x: int) -> int:
    return x


@application()
@function()
def needs_a_big_machine(x: int) -> int:
    return huge(x)


@function(region="eu-west-1")
def in_europe(x: int) -> int:
    return x


@application()
@function()
def pinned(x: int) -> int:
    return in_europe(x)


@cls(init_timeout=1)
class SlowModel:
    def __init__(self) -> None:
        time.sleep(30)

    @function()
    def predict(self, x: int) -> int:
        return x


@application()
@function()
def slow_init(x: int) -> int:
    return SlowModel().predict(x)


@application()
@function(retries=Retries(max_retries=5, initial_delay=0))
def stops_early() -> str:
    raise RequestError("the input can never work")


@function(memory=1)
def hog(megabytes: int) -> int:
    block = bytearray(megabytes * 2**20)  # zero-filled: really resident
    time.sleep(30)
    return len(block)


@application()
@function()
def greedy(megabytes: int) -> int:
    return hog(megabytes)
