"""Blobs as files in a local folder (the default, inside the data folder)."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cove.blobs.base import CHUNK, BlobInfo, BlobRef, BlobStore, BlobWriter, Partial, check_key
from cove.errors import StorageFullError, storage_full


class _LocalWriter(BlobWriter):
    def __init__(self, store: LocalBlobStore) -> None:
        super().__init__()
        self.store = store
        self.tmp = store.tmp_dir / f"{uuid.uuid4().hex}"
        self._fh: BinaryIO | None = None
        try:
            self._fh = open(self.tmp, "xb")  # noqa: SIM115 (closed by commit/abort)
        except OSError as exc:
            raise self._full(exc) from exc

    def _write(self, chunk: bytes) -> None:
        assert self._fh is not None, "write after commit or abort"
        try:
            self._fh.write(chunk)
        except OSError as exc:
            raise self._full(exc) from exc

    def _full(self, exc: OSError) -> OSError | StorageFullError:
        """``exc`` as StorageFullError when the disk is full, after dropping the temporary
        file at once: its space is free again and no partial blob is left behind."""
        full = storage_full(exc)
        if full is None:
            return exc
        self.abort()
        self.store.full_since = self.store.full_since or time.time()
        return full

    def commit(self) -> BlobRef:
        assert self._fh is not None, "commit after commit or abort"
        fh, self._fh = self._fh, None
        key = self.key
        path = self.store.path(key)
        try:
            if self.store.fsync:
                fh.flush()
                os.fsync(fh.fileno())
            fh.close()
            if path.exists():
                os.utime(path)  # fresh again: cleanup keeps young unreferenced blobs
                self.tmp.unlink(missing_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.tmp, path)  # atomic: readers see all of it or nothing
                if self.store.fsync:
                    _fsync_dir(path.parent)
        except BaseException as exc:
            with contextlib.suppress(OSError):  # its buffer may not fit either
                fh.close()
            self.tmp.unlink(missing_ok=True)
            full = storage_full(exc)
            if full is not None and full is not exc:
                self.store.full_since = self.store.full_since or time.time()
                raise full from exc
            raise
        return BlobRef(key, self.size)

    def abort(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):  # a full disk may refuse its last buffer
                self._fh.close()
            self._fh = None
        self.tmp.unlink(missing_ok=True)


class LocalBlobStore(BlobStore):
    """Blobs under ``root/ab/abcdef...``; writers use ``root/.tmp/`` and rename when done."""

    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.root = Path(root).resolve()
        self.fsync = fsync
        #: When a write last found the disk full (None: not since the last check found room;
        #: see cove.server.health).
        self.full_since: float | None = None
        self.tmp_dir = self.root / ".tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        check_key(key)
        return self.root / key[:2] / key

    def writer(self) -> BlobWriter:
        return _LocalWriter(self)

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self.path(key), "rb")
        except FileNotFoundError:
            raise self.missing(key) from None

    def read_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        fh = self.open(key)
        return _chunks(fh, start, end)

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            raise self.missing(key) from None

    def local_path(self, key: str) -> Path | None:
        return self.path(key)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def list_blobs(self) -> Iterator[BlobInfo]:
        for folder in sorted(self.root.iterdir()):
            if len(folder.name) != 2 or not folder.is_dir():
                continue
            for path in folder.iterdir():
                try:
                    st = path.stat()
                    yield BlobInfo(check_key(path.name), st.st_size, st.st_mtime)
                except (KeyError, FileNotFoundError):
                    continue

    def list_partial(self) -> Iterator[Partial]:
        for path in self.tmp_dir.iterdir():
            try:
                yield Partial(path.name, path.stat().st_mtime)  # the last write, not the first
            except FileNotFoundError:
                continue

    def delete_partial(self, partial_id: str) -> None:
        if "/" in partial_id or partial_id.startswith("."):
            raise KeyError(partial_id)
        (self.tmp_dir / partial_id).unlink(missing_ok=True)

    def environment(self) -> dict[str, str]:
        return {"COVE_BLOB_URL": self.root.as_uri(), "COVE_BLOB_FSYNC": "1" if self.fsync else "0"}


def _chunks(fh: BinaryIO, start: int, end: int | None) -> Iterator[bytes]:
    with fh:
        fh.seek(start)
        left = None if end is None else max(0, end - start)
        while left is None or left > 0:
            chunk = fh.read(CHUNK if left is None else min(CHUNK, left))
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
