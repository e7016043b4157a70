"""Functions that ask the CUDA driver itself what they can see: run on a real GPU machine."""

import ctypes
import os

from cove import application, function


def cuda_view() -> dict[str, object]:
    """What the CUDA driver shows this process: device count and names, or the error."""
    view: dict[str, object] = {"visible": os.environ.get("CUDA_VISIBLE_DEVICES")}
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        view["error"] = f"no libcuda: {exc}"
        return view
    status = cuda.cuInit(0)
    if status != 0:
        view["init_status"] = status  # 100 is CUDA_ERROR_NO_DEVICE
        view["count"] = 0
        return view
    count = ctypes.c_int()
    cuda.cuDeviceGetCount(ctypes.byref(count))
    names = []
    for ordinal in range(count.value):
        device = ctypes.c_int()
        cuda.cuDeviceGet(ctypes.byref(device), ordinal)
        name = ctypes.create_string_buffer(256)
        cuda.cuDeviceGetName(name, 256, device)
        names.append(name.value.decode())
    view.update(init_status=0, count=count.value, names=names)
    return view


@function(gpu="H100")
def sees_h100() -> dict[str, object]:
    return cuda_view()


@function(gpu=["A100-80GB", "H100", "H200"])
def sees_any_of() -> dict[str, object]:
    return cuda_view()


@function()
def sees_none() -> dict[str, object]:
    return cuda_view()


@application()
@function()
def real_gpu_check() -> dict[str, object]:
    return {"h100": sees_h100(), "any_of": sees_any_of(), "none": sees_none()}
