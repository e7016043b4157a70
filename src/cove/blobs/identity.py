"""Which blob store a database belongs with: a marker blob, and its id in the database.

Replicas over one PostgreSQL database share its journal, and the journal refers to blobs
(code, payloads over the inline limit, files) by key only: every replica must read and
write one blob store, or a request accepted by one replica fails on another for want of
its blobs. So the store carries an identity. The first replica over a database makes a
random store id, writes a marker blob holding it into its store, and records the id (and
the store's URL) in the one row of ``blob_stores``; a replica starting later checks that
its own store holds the marker of the recorded id (``cove.engine.leases.claim_blob_store``
says what happens when it does not). The marker is an ordinary blob, so copying a store
(a folder, a bucket) copies its identity; blob cleanup keeps it (``marker_keys``).

On SQLite (one server) none of this runs.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from cove.blobs.base import BlobStore
from cove.store import schema

#: The ``name`` of the one row of ``blob_stores``.
ROW = "current"


def marker(store_id: str) -> bytes:
    """The marker blob's bytes for a store id."""
    return f"cove blob store {store_id}\n".encode()


def marker_key(store_id: str) -> str:
    """The marker blob's key (its SHA-256, as for every blob)."""
    return BlobStore.key_of(marker(store_id))


def recorded(conn: Connection) -> dict[str, Any] | None:
    """The database's blob store row (``store_id``, ``url``, ``replica``, ``recorded_at``),
    or None before any replica recorded one (and always on SQLite)."""
    t = schema.blob_stores
    row = conn.execute(select(t).where(t.c.name == ROW)).mappings().first()
    return dict(row) if row is not None and row["store_id"] else None


def marker_keys(conn: Connection) -> set[str]:
    """The marker blobs cleanup must keep."""
    row = recorded(conn)
    return {marker_key(row["store_id"])} if row is not None else set()
