"""Functions that ask for GPUs by model."""

import os
import time

from cove import application, function


@function(gpu="H100")
def on_h100(seconds: float) -> dict[str, object]:
    start = time.monotonic()
    time.sleep(seconds)
    return {
        "visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "order": os.environ.get("CUDA_DEVICE_ORDER"),
        "start": start,
        "end": time.monotonic(),
    }


@function()
def no_gpu() -> str | None:
    return os.environ.get("CUDA_VISIBLE_DEVICES")


@application()
@function()
def gpu_work(n: int) -> dict[str, object]:
    return {"h100": on_h100.map([0.5] * n), "plain": no_gpu()}


@function(gpu="A100-80GB:2")
def on_two_a100s() -> str:
    return "never here"


@application()
@function()
def wants_a100s() -> str:
    return on_two_a100s()
