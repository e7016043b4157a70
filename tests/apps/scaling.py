"""Pools under load: warm, minimum and maximum containers, concurrency, temp folders."""

import asyncio
import os
import tempfile
import threading
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


@function(max_containers=1, max_concurrency=4)
async def nap(seconds: float) -> dict[str, float]:
    start = time.monotonic()
    await asyncio.sleep(seconds)
    loop = asyncio.get_running_loop()
    return {
        "start": start,
        "end": time.monotonic(),
        "loop": id(loop),
        "thread": threading.get_ident(),
    }


@application()
@function()
def use_nap(n: int) -> list[dict[str, float]]:
    return nap.map([0.5] * n)


@function(max_containers=1)
async def count_down_awaiting(n: int) -> int:
    return 0 if n == 0 else 1 + await count_down_awaiting(n - 1)


@function(max_containers=1)
async def count_down_blocking(n: int) -> int:
    # A blocking wait in an async body: its child runs in the same container, on another
    # thread, since this body holds up the container's loop.
    return 0 if n == 0 else 1 + count_down_blocking.future(n - 1).result()


@application()
@function()
def use_count_down(n: int) -> list[int]:
    # Calling an async function gives a coroutine; a sync body waits for its Future.
    return [count_down_awaiting.future(n).result(), count_down_blocking.future(n).result()]
