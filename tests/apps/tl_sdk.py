"""Applications called through the unchanged ``tensorlake`` SDK pointed at a Cove server
(tests/e2e/test_tensorlake_sdk.py). Written against ``tensorlake.applications``: deployed
on Cove those imports are Cove's; the SDK's driver imports this file with the real SDK
(its pydantic models are what outputs decode into)."""

import os
import time

from pydantic import BaseModel
from tensorlake.applications import (
    File,
    RequestContext,
    RequestError,
    application,
    function,
)


class Point(BaseModel):
    x: float
    y: float


class Box(BaseModel):
    corner: Point
    width: float
    height: float


class Area(BaseModel):
    area: float
    center: Point


@application()
@function()
def tl_hello() -> str:
    return "hello from cove"


@application()
@function()
def tl_greet(name: str) -> str:
    return f"hello, {name}"


@application()
@function()
def tl_combine(a: int, b: str = "x", c: list[int] | None = None) -> dict:
    return {"a": a, "b": b, "c": c}


@application()
@function()
def tl_upper_file(doc: File) -> File:
    return File(content=doc.content.upper(), content_type=doc.content_type + "; upper=1")


@application()
@function()
def tl_stamp_file(doc: File, stamp: str) -> File:
    return File(content=stamp.encode() + b":" + doc.content, content_type="application/x-stamped")


@application()
@function()
def tl_area(box: Box) -> Area:
    center = Point(x=box.corner.x + box.width / 2, y=box.corner.y + box.height / 2)
    return Area(area=box.width * box.height, center=center)


@application()
@function()
def tl_fails(x: int) -> int:
    raise ValueError(f"no good: {x}")


@application()
@function()
def tl_rejects(x: int) -> int:
    raise RequestError(f"rejected input {x}")


@application()
@function()
def tl_steps(steps: int) -> int:
    progress = RequestContext.get().progress
    for step in range(1, steps + 1):
        progress.update(step, steps, f"step {step} of {steps}")
    return steps


@application()
@function()
def tl_wait(path: str) -> str:
    """Runs until the file ``path`` exists (the test writes it)."""
    while not os.path.exists(path):
        time.sleep(0.05)
    return "released"
