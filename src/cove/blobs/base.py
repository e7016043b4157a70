"""The blob store interface: content-addressed, immutable blobs written and read as streams.

A blob's key is the SHA-256 of its bytes, computed while it is written: a writer sends
chunks to a temporary place (a file, or an S3 multipart upload) and ``commit`` moves them
under their key at once, so a reader never sees half a blob and a crash leaves only a
temporary that :meth:`BlobStore.list_partial` finds for cleanup.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cove.errors import BlobMissingError, PayloadTooLargeError, blob_missing

CHUNK = 1024 * 1024
_KEY = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class BlobRef:
    """A stored blob by reference: what travels instead of its bytes."""

    key: str
    size: int


@dataclass(frozen=True)
class BlobInfo:
    """A blob found by :meth:`BlobStore.list_blobs`."""

    key: str
    size: int
    modified: float


@dataclass(frozen=True)
class Partial:
    """An unfinished upload (a temporary left by a writer): ``started`` is a Unix time."""

    id: str
    started: float


def check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise KeyError(key)
    return key


class BlobWriter(ABC):
    """Receives a blob's bytes in chunks; ``commit`` stores it under its SHA-256."""

    def __init__(self) -> None:
        self.size = 0
        self._hash = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)
        self._write(chunk)

    @property
    def key(self) -> str:
        return self._hash.hexdigest()

    @abstractmethod
    def _write(self, chunk: bytes) -> None: ...

    @abstractmethod
    def commit(self) -> BlobRef:
        """Make the blob durable under its key (a no-op when it is stored already)."""

    @abstractmethod
    def abort(self) -> None:
        """Drop what was written (safe to call twice, or after commit)."""


class BlobStore(ABC):
    """Stores blobs under their SHA-256; a stored blob never changes."""

    @staticmethod
    def key_of(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    # -- writing ---------------------------------------------------------------------------
    @abstractmethod
    def writer(self) -> BlobWriter:
        """A writer for a new blob."""

    def put(self, data: bytes) -> str:
        """Store ``data`` durably and return its key (idempotent)."""
        return self.put_stream([data]).key

    def put_stream(self, chunks: Iterable[bytes], limit: int | None = None) -> BlobRef:
        """Store a blob from chunks, never holding more than one chunk in memory."""
        writer = self.writer()
        try:
            for chunk in chunks:
                _check_limit(writer.size + len(chunk), limit)
                writer.write(chunk)
            return writer.commit()
        except BaseException:
            writer.abort()
            raise

    def put_file(self, path: Path) -> BlobRef:
        """Store a file's bytes, read in chunks."""
        with open(path, "rb") as fh:
            return self.put_stream(iter(lambda: fh.read(CHUNK), b""))

    async def aput_stream(self, chunks: AsyncIterable[bytes], limit: int | None = None) -> BlobRef:
        """Store a blob from an async source (an HTTP body); the writes run in a thread so
        the event loop never waits on a disk or the network. Over ``limit`` bytes, the
        upload is dropped and PayloadTooLargeError raised."""
        loop = asyncio.get_running_loop()
        writer = await loop.run_in_executor(None, self.writer)
        try:
            buffered: list[bytes] = []
            pending = 0
            async for chunk in chunks:
                _check_limit(writer.size + pending + len(chunk), limit)
                buffered.append(chunk)
                pending += len(chunk)
                if pending >= CHUNK:  # one thread hop per MiB, not per network read
                    await loop.run_in_executor(None, writer.write, b"".join(buffered))
                    buffered, pending = [], 0
            if buffered:
                await loop.run_in_executor(None, writer.write, b"".join(buffered))
            return await loop.run_in_executor(None, writer.commit)
        except BaseException:
            await asyncio.shield(loop.run_in_executor(None, writer.abort))
            raise

    # -- reading ---------------------------------------------------------------------------
    # A missing blob raises BlobMissingError (code ``blob_missing``, naming the blob and this
    # store's URL); it is a KeyError too, so ``except KeyError`` still catches it.
    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A readable binary stream of the blob; raises BlobMissingError if there is none."""

    @abstractmethod
    def read_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes ``start`` to ``end`` (exclusive; None: to the end) in chunks."""

    def get(self, key: str) -> bytes:
        """The whole blob in memory (for small payloads); raises BlobMissingError if absent."""
        with self.open(key) as fh:
            return fh.read()

    @abstractmethod
    def size(self, key: str) -> int:
        """The blob's size in bytes; raises BlobMissingError if there is none."""

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except KeyError:
            return False
        return True

    def missing(self, key: str) -> BlobMissingError:
        """The error for ``key`` not being in this store."""
        return blob_missing(key, self.url)

    def local_path(self, key: str) -> Path | None:
        """Where the blob lies on this machine's disk, when it does (local backend)."""
        return None

    # -- cleanup ---------------------------------------------------------------------------
    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove a blob (no error if it is gone already)."""

    @abstractmethod
    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every stored blob, for cleanup."""

    @abstractmethod
    def list_partial(self) -> Iterator[Partial]:
        """Unfinished uploads (temporaries of writers that never committed)."""

    @abstractmethod
    def delete_partial(self, partial_id: str) -> None:
        """Remove an unfinished upload's temporary."""

    # -- configuration ---------------------------------------------------------------------
    @abstractmethod
    def environment(self) -> dict[str, str]:
        """``COVE_BLOB_*`` variables from which a container opens this same store."""

    @property
    def url(self) -> str:
        """Where this store is (``file:///...``, ``s3://bucket/prefix/``; no credentials)."""
        return self.environment().get("COVE_BLOB_URL", "")


def _check_limit(size: int, limit: int | None) -> None:
    if limit is not None and size > limit:
        raise PayloadTooLargeError(
            f"the upload is larger than the limit of {limit} bytes", limit=limit
        )
