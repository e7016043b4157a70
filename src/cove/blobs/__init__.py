"""Blob storage for payloads too big for a journal row."""

from cove.blobs.base import BlobStore
from cove.blobs.local import LocalBlobStore

__all__ = ["BlobStore", "LocalBlobStore"]
