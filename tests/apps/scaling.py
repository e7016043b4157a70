"""Pools under load: warm, minimum and maximum containers, concurrency, temp folders."""

import os
import tempfile
import time
from pathlib import Path

from cove import application, function


@function(warm_containers=2, max_containers=4)
def warm(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


@application()
@function()
def use_warm(seconds: float) -> int:
    return warm(seconds)


@function(max_containers=2)
def capped(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


@application()
@function()
def use_capped(n: int) -> list[int]:
    return capped.map([0.2] * n)


@function(min_containers=1)
def kept(x: int) -> int:
    return x


@function()
def on_demand(x: int) -> int:
    return x


@application()
@function()
def use_kept(x: int) -> int:
    return kept(x) + on_demand(x)


@function(max_containers=1, max_concurrency=3)
def shared(seconds: float) -> tuple[int, float, float]:
    start = time.monotonic()
    time.sleep(seconds)
    return os.getpid(), start, time.monotonic()


@application()
@function()
def use_shared(n: int) -> list[tuple[int, float, float]]:
    return shared.map([0.5] * n)


@function()
def scratch(name: str) -> str:
    folder = tempfile.gettempdir()
    Path(folder, name).write_text("scratch")
    time.sleep(0.5)  # long enough that the map spreads over several containers
    return folder


@application()
@function()
def use_scratch(names: list[str]) -> list[str]:
    return scratch.map(names)


@function(ephemeral_disk=2)
def fills_disk(gigabytes: float) -> str:
    with open(Path(tempfile.gettempdir(), "big.bin"), "wb") as fh:
        fh.truncate(int(gigabytes * 1024**3))
    time.sleep(30)
    return "never"


@application()
@function()
def use_fills_disk(gigabytes: float) -> str:
    return fills_disk(gigabytes)


@function(cpu=1)
def one_cpu() -> int:
    return len(os.sched_getaffinity(0))


@function(cpu=2)
def two_cpus() -> int:
    return len(os.sched_getaffinity(0))


@application()
@function()
def use_cpus() -> list[int]:
    return [one_cpu(), two_cpus()]
