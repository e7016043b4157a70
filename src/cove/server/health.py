"""``GET /healthz``: the server runs, and whether its storage has room.

A write that meets a full disk (``ENOSPC``, SQLite's ``SQLITE_FULL``, PostgreSQL's
``disk_full``) marks the store or the blob store full (their ``full_since``). While one is
marked, each health check tries a small write of its own in the data folder (and the local
blob folder): when it fits, the marks are cleared and the server reports ``ok`` again; until
then ``/healthz`` answers ``503`` with ``"status": "storage_full"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cove.engine.engine import Engine

#: The size of the write that tells whether a full disk has room again.
PROBE_BYTES = 64 * 1024


async def storage(engine: Engine) -> dict[str, Any]:
    """``full`` (and since when), the data folder's free bytes, and the outcome writes that
    wait for room (``waiting_writes``: their requests are paused, not failed)."""
    marks = [engine.store, engine.blobs]
    since = [t for t in (getattr(m, "full_since", None) for m in marks) if t is not None]
    folders = [engine.data_dir]
    blob_tmp = getattr(engine.blobs, "tmp_dir", None)
    if isinstance(blob_tmp, Path):
        folders.append(blob_tmp)
    full = bool(since) and not await asyncio.to_thread(_room, folders)
    if since and not full:
        for mark in marks:
            if getattr(mark, "full_since", None) is not None:
                mark.full_since = None  # type: ignore[attr-defined]
    free: int | None = None
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(engine.data_dir).free
    return {
        "full": full,
        "full_since": min(since) if full else None,
        "free_bytes": free,
        "waiting_writes": engine.storage_waiting,
    }


def _room(folders: list[Path]) -> bool:
    """Whether a small write fits in each folder (the probe is removed again)."""
    for folder in folders:
        probe = folder / f".cove-probe-{uuid.uuid4().hex}"
        try:
            with open(probe, "wb") as fh:
                fh.write(b"\0" * PROBE_BYTES)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError:
            return False
        finally:
            probe.unlink(missing_ok=True)
    return True
