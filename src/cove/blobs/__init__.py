"""Blob storage: payloads too big for a journal row, and files.

``open_blob_store(url)`` picks the backend from a URL: ``file:///path`` (or a plain path)
for a local folder, ``s3://bucket/prefix`` for an S3-compatible store. Containers open the
same store from the ``COVE_BLOB_*`` variables the server gives them, and read and write
blobs directly rather than through the server.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

from cove.blobs.base import BlobInfo, BlobRef, BlobStore, BlobWriter, Partial
from cove.blobs.local import LocalBlobStore

__all__ = [
    "BlobInfo",
    "BlobRef",
    "BlobStore",
    "BlobWriter",
    "LocalBlobStore",
    "Partial",
    "default_store",
    "open_blob_store",
    "store_from_env",
]


def open_blob_store(url: str, fsync: bool = True, s3: object | None = None) -> BlobStore:
    """The store at ``url``; ``s3`` is an :class:`cove.blobs.s3.S3Options` for S3 URLs."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        from cove.blobs.s3 import S3BlobStore, S3Options

        if not parsed.netloc:
            raise ValueError(f"blob store URL {url!r} names no bucket")
        options = s3 if isinstance(s3, S3Options) else S3Options()
        return S3BlobStore(parsed.netloc, parsed.path, options)
    if parsed.scheme == "file":
        return LocalBlobStore(Path(unquote(parsed.path)), fsync=fsync)
    if parsed.scheme == "":
        return LocalBlobStore(Path(url), fsync=fsync)
    raise ValueError(f"blob store URL {url!r}: use file:///path or s3://bucket/prefix")


def store_from_env(env: Mapping[str, str]) -> BlobStore | None:
    """The store that ``COVE_BLOB_*`` variables describe, or None when there is none."""
    url = env.get("COVE_BLOB_URL")
    if not url:
        return None
    options = None
    if url.startswith("s3://"):
        from cove.blobs.s3 import S3Options

        options = S3Options(
            endpoint_url=env.get("COVE_BLOB_S3_ENDPOINT_URL") or None,
            region=env.get("COVE_BLOB_S3_REGION") or None,
            access_key_id=env.get("COVE_BLOB_S3_ACCESS_KEY_ID") or None,
            secret_access_key=env.get("COVE_BLOB_S3_SECRET_ACCESS_KEY") or None,
            part_size=int(env.get("COVE_BLOB_S3_PART_SIZE") or 16 * 1024 * 1024),
        )
    return open_blob_store(url, env.get("COVE_BLOB_FSYNC", "1") != "0", options)


_default: dict[str, BlobStore | None] = {}
_default_lock = threading.Lock()


def default_store() -> BlobStore | None:
    """This process's store, from its environment (set in containers), opened once."""
    url = os.environ.get("COVE_BLOB_URL", "")
    with _default_lock:
        if url not in _default:
            _default[url] = store_from_env(os.environ)
        return _default[url]
