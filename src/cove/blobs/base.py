"""The blob store interface: content-addressed, immutable byte strings."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod


class BlobStore(ABC):
    """Stores byte strings under their SHA-256; a stored blob never changes."""

    @staticmethod
    def key_of(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    @abstractmethod
    def put(self, data: bytes) -> str:
        """Store ``data`` durably and return its key (idempotent)."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The bytes stored under ``key``; raises KeyError if there are none."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove a blob (no error if it is gone already)."""
