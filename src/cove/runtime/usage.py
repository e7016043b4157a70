"""What a container uses, read from the operating system: resident memory and folder size;
and the server's own free memory given back.

Shared by the local runtime (the server reads its containers' /proc) and the Ray actor (the
container reads its own).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import os
from collections.abc import Callable
from pathlib import Path


def resident_bytes(pid: int | str = "self") -> int | None:
    """The process's resident set (VmRSS) in bytes; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


def folder_bytes(folder: Path) -> int:
    """The size of every file below ``folder`` (files that vanish meanwhile count 0)."""
    total = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _load_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to give back
        return None
    return trim


_malloc_trim = _load_trim()


def release_free_memory() -> bool:
    """Give the heap's free pages back to the system (glibc's ``malloc_trim``), after
    collecting garbage: memory a burst of work made the process grow to stays resident
    otherwise, though free. False where the C library has no such call."""
    gc.collect()
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True
