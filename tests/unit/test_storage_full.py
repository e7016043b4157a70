"""A full disk, without mounting one (tests/integration/test_full_disk.py mounts a tmpfs as
root): what counts as storage_full, and the store, the blob store and a container's output
each turning ENOSPC into it and staying usable."""

from __future__ import annotations

import errno
import io
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from cove.blobs import LocalBlobStore
from cove.errors import ErrorCode, StorageFullError, error_from_dict, storage_full
from cove.runtime.logcapture import CallOutput
from cove.server.errors import STATUS_OF
from cove.store import open_store


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


def test_what_counts_as_a_full_disk() -> None:
    assert isinstance(storage_full(_enospc()), StorageFullError)
    sqlite_full = sqlite3.OperationalError("database or disk is full")
    assert storage_full(sqlite_full) is not None
    wrapped = sa_exc.OperationalError("INSERT ...", {}, sqlite_full)
    found = storage_full(wrapped)
    assert found is not None and "[SQL" not in found.message and "\n" not in found.message
    try:
        try:
            raise _enospc()
        except OSError as inner:
            raise RuntimeError("writing failed") from inner
    except RuntimeError as outer:
        assert storage_full(outer) is not None  # found through the chain
    assert storage_full(OSError(errno.EACCES, "Permission denied")) is None
    assert storage_full(ValueError("no")) is None
    assert storage_full(None) is None
    # Over HTTP: 507, and back into the same class on the client's side.
    assert STATUS_OF[ErrorCode.STORAGE_FULL] == 507
    back = error_from_dict(StorageFullError("full").to_dict())
    assert isinstance(back, StorageFullError) and back.code == ErrorCode.STORAGE_FULL


def test_a_blob_that_does_not_fit_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    writer = blobs.writer()
    writer.write(b"a" * 1000)
    fh: Any = writer._fh  # type: ignore[attr-defined]

    def refuse(_data: bytes) -> int:
        raise _enospc()

    monkeypatch.setattr(fh, "write", refuse)
    with pytest.raises(StorageFullError):
        writer.write(b"b" * 1000)
    assert list(blobs.tmp_dir.iterdir()) == []  # dropped at once, before any abort()
    assert blobs.full_since is not None
    writer.abort()  # still safe
    assert blobs.put(b"fits again") == LocalBlobStore.key_of(b"fits again")


def test_the_store_fails_a_write_with_storage_full_and_keeps_working(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        store.write_sync(lambda c: c.execute(text("CREATE TABLE t (x INTEGER)")))

        def full(conn: Any) -> None:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            raise _enospc()  # as a payload's blob write inside the op would

        with pytest.raises(StorageFullError):
            store.write_sync(full)
        assert store.full_since is not None
        store.write_sync(lambda c: c.execute(text("INSERT INTO t VALUES (2)")))
        rows = store.read_sync(lambda c: c.execute(text("SELECT x FROM t")).fetchall())
        assert [tuple(r) for r in rows] == [(2,)]  # the failed write was rolled back
    finally:
        store.close()


def test_a_containers_output_on_a_full_disk_does_not_fail_the_call() -> None:
    class Full(io.StringIO):
        def write(self, _text: str) -> int:
            raise _enospc()

        def flush(self) -> None:
            raise _enospc()

    out = CallOutput(Full(), "stdout", shipper=None)  # type: ignore[arg-type]
    assert out.write("hello\n") == 6  # no call scope here: nothing is shipped
    out.flush()
