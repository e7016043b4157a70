"""Functions for the Ray runtime tests (tests/e2e/test_ray.py): each reports where it ran.

``COVE_RAY_NODE_ID`` is the Ray node a container runs on (set by the Ray runtime);
``COVE_TEST_NODE`` is the name the test gave the node when it started it.
"""

import os
import time
from pathlib import Path

from cove import RequestContext, application, function


def _where() -> dict[str, str]:
    return {
        "node_id": os.environ.get("COVE_RAY_NODE_ID", ""),
        "node": os.environ.get("COVE_TEST_NODE", ""),
        "secret": os.environ.get("RAY_TEST_SECRET", ""),
    }


@function(region="eu-west-1", secrets=["RAY_TEST_SECRET"])
def in_region(i: int) -> dict[str, str]:
    return _where()


@application()
@function()
def pinned(n: int) -> list[dict[str, str]]:
    """``n`` calls of a function pinned to eu-west-1."""
    return in_region.map(list(range(n)))


@function(max_containers=4)
def work(i: int) -> dict[str, str]:
    ctx = RequestContext.get()
    ctx.progress.update(i, 8, f"item {i}")
    time.sleep(1.0)  # long enough that the map needs several containers at once
    return {**_where(), "i": str(i)}


@application()
@function()
def spread(n: int) -> dict[str, object]:
    """A map over ``n`` items, with state written by the parent and read back."""
    ctx = RequestContext.get()
    ctx.state.set("asked", n)
    items = work.map(list(range(n)))
    future = work.future(100)
    future.run()
    return {"items": items, "extra": future.result(), "asked": ctx.state.get("asked")}


@function(max_containers=4)
def slow(item: tuple[str, int]) -> dict[str, str]:
    """Marks that the item began on this node, then works for a while."""
    folder, i = item
    where = _where()
    (Path(folder) / f"{i}-{where['node']}-{os.getpid()}").touch()
    time.sleep(4.0)
    return {**where, "i": str(i)}


@application()
@function(region="us-east-1")
def survive(folder: str, n: int) -> list[dict[str, str]]:
    """A map whose items run on both nodes; the entry call stays on the head node."""
    return slow.map([(folder, i) for i in range(n)])


@function(memory=1)
def hog(megabytes: int) -> int:
    block = bytearray(megabytes * 2**20)  # zero-filled: really resident
    time.sleep(60)
    return len(block)


@application()
@function()
def greedy(megabytes: int) -> int:
    return hog(megabytes)


@function(timeout=2, max_containers=1)
def napper(seconds: float) -> dict[str, str]:
    time.sleep(seconds)
    return {**_where(), "pid": str(os.getpid())}


@application()
@function()
def nap(seconds: float) -> dict[str, str]:
    return napper(seconds)
