"""What a container uses, read from the operating system: resident memory and folder size.

Shared by the local runtime (the server reads its containers' /proc) and the Ray actor (the
container reads its own).
"""

from __future__ import annotations

import contextlib
import os
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
