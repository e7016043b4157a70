"""Where payloads live: small ones in journal rows, large ones in the blob store."""

from __future__ import annotations

from cove.blobs import BlobRef, BlobStore
from cove.store import journal as j


class Payloads:
    """Small payloads stay in journal rows; large ones go to the blob store."""

    def __init__(self, blobs: BlobStore, limit: int) -> None:
        self.blobs = blobs
        self.limit = limit

    def keep(self, data: bytes | BlobRef) -> j.Payload:
        if isinstance(data, BlobRef):  # a File a container stored itself: keep its key only
            return j.Payload(blob=data.key)
        if len(data) <= self.limit:
            return j.Payload(inline=data)
        return j.Payload(blob=self.blobs.put(data))

    def load(self, payload: j.Payload) -> bytes:
        """The payload's bytes; BlobMissingError (``blob_missing``, naming the blob and the
        store) when its blob is not in the store."""
        if payload.inline is not None:
            return payload.inline
        if payload.blob is not None:
            return self.blobs.get(payload.blob)
        return b""
