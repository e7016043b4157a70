"""The server's blob store, from its settings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cove.blobs import BlobStore, open_blob_store

if TYPE_CHECKING:
    from cove.engine.settings import Settings


def blob_store_of(settings: Settings, fsync: bool = True) -> BlobStore:
    """``settings.blob_url`` (``COVE_BLOB_URL``), else the data folder's ``blobs``."""
    url = settings.blob_url or (Path(settings.data_dir) / "blobs").resolve().as_uri()
    options = None
    if url.startswith("s3://"):
        from cove.blobs.s3 import S3Options

        options = S3Options(
            endpoint_url=settings.blob_s3_endpoint_url,
            region=settings.blob_s3_region,
            access_key_id=settings.blob_s3_access_key_id,
            secret_access_key=settings.blob_s3_secret_access_key,
            part_size=settings.blob_s3_part_size,
        )
    return open_blob_store(url, fsync, options)
