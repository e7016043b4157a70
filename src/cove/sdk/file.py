"""Binary files passed into and out of applications, of any size.

A ``File`` holds its bytes in one of three places: in memory (``File(content)``), in a
file on disk (``File.from_path``), or in the server's blob store (an uploaded file, or a
``File`` received from another function). ``content`` loads them on first access;
``open()`` streams them and ``size`` needs no read at all. Between functions a large
``File`` travels as a reference to its blob: pickling one stores it in the blob store
first (once), so passing it on copies no bytes.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, BinaryIO

from cove.blobs import BlobRef, BlobStore, default_store

DEFAULT_TYPE = "application/octet-stream"
# A reference in a pickle reads "cove-blob:<sha256>", so the server can find the blobs a
# payload refers to without unpickling it (for cleanup).
BLOB_MARKER = "cove-blob:"
# Files up to this size travel inline; larger ones by reference to a blob.
INLINE_LIMIT = 16 * 1024


class File:
    """Raw bytes with a content type.

    An application parameter hinted ``File`` receives an upload as is (no JSON); an
    application returning ``File`` answers with its bytes as the HTTP body and
    ``content_type`` as its ``Content-Type``.
    """

    def __init__(self, content: bytes | None = None, content_type: str = DEFAULT_TYPE) -> None:
        if isinstance(content, bytearray | memoryview):
            content = bytes(content)
        if content is not None and not isinstance(content, bytes):
            raise TypeError(f"File.content must be bytes, got {type(content).__name__}")
        self._data: bytes | None = content if content is not None else b""
        self._path: Path | None = None
        self._ref: BlobRef | None = None
        self._store: BlobStore | None = None
        self.content_type = content_type

    @classmethod
    def from_path(cls, path: str | Path, content_type: str = DEFAULT_TYPE) -> File:
        """A file on disk, read only when its bytes are needed (streamed, when returned)."""
        file = cls(None, content_type)
        file._data, file._path = None, Path(path)
        if not file._path.is_file():
            raise FileNotFoundError(f"File.from_path: {path} is not a file")
        return file

    @classmethod
    def from_blob(
        cls, ref: BlobRef, content_type: str = DEFAULT_TYPE, store: BlobStore | None = None
    ) -> File:
        """A blob in the blob store (``store``, else this process's)."""
        file = cls(None, content_type)
        file._data, file._ref, file._store = None, ref, store
        return file

    # -- the bytes ---------------------------------------------------------------------------
    @property
    def content(self) -> bytes:
        """All the bytes, loaded (and kept) on first access."""
        if self._data is None:
            with self.open() as fh:
                self._data = fh.read()
        return self._data

    @content.setter
    def content(self, value: bytes) -> None:
        if isinstance(value, bytearray | memoryview):
            value = bytes(value)
        if not isinstance(value, bytes):
            raise TypeError(f"File.content must be bytes, got {type(value).__name__}")
        self._data, self._path, self._ref, self._store = value, None, None, None

    @property
    def size(self) -> int:
        """The size in bytes, without reading them."""
        if self._data is not None:
            return len(self._data)
        if self._path is not None:
            return self._path.stat().st_size
        assert self._ref is not None
        return self._ref.size

    def open(self) -> BinaryIO:
        """A readable binary stream of the bytes (a file or a blob read as it goes)."""
        if self._data is not None:
            return io.BytesIO(self._data)
        if self._path is not None:
            return open(self._path, "rb")
        assert self._ref is not None
        return self._blob_store().open(self._ref.key)

    @property
    def blob_key(self) -> str | None:
        """The SHA-256 key of the blob holding the bytes, when they are in the blob store."""
        return self._ref.key if self._ref is not None else None

    def stored(
        self, store: BlobStore | None = None, threshold: int = INLINE_LIMIT
    ) -> BlobRef | None:
        """The blob holding the bytes, stored now (streamed) if they are larger than
        ``threshold`` and not stored yet. None when they stay inline (small, or there is no
        blob store in this process)."""
        if self._ref is not None:
            return self._ref
        if self.size <= threshold:
            return None
        target = store or default_store()
        if target is None:
            return None
        if self._path is not None:
            self._ref = target.put_file(self._path)
        else:
            assert self._data is not None
            self._ref = target.put_stream([self._data])
        self._store = target
        return self._ref

    def _blob_store(self) -> BlobStore:
        store = self._store or default_store()
        if store is None:
            raise RuntimeError(
                "this File's bytes are in a blob store that this process cannot reach "
                "(COVE_BLOB_URL is not set)"
            )
        self._store = store
        return store

    # -- Python protocol ---------------------------------------------------------------------
    def __reduce__(self) -> tuple[Any, ...]:
        ref = self.stored()
        if ref is not None:
            return (_file_from_blob, (BLOB_MARKER + ref.key, ref.size, self.content_type))
        return (File, (self.content, self.content_type))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, File):
            return NotImplemented
        if self.content_type != other.content_type or self.size != other.size:
            return False
        if self._ref is not None and other._ref is not None:
            return self._ref.key == other._ref.key
        return self.content == other.content

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it was

    def __repr__(self) -> str:
        where = " in blob " + self._ref.key[:12] if self._ref is not None else ""
        return f"File({self.size} bytes, content_type={self.content_type!r}{where})"


def _file_from_blob(marker: str, size: int, content_type: str) -> File:
    return File.from_blob(BlobRef(marker.removeprefix(BLOB_MARKER), size), content_type)
