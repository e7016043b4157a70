"""Replicas over one PostgreSQL database must share one blob store (cove.blobs.identity,
``cove.engine.leases.claim_blob_store``): a replica whose store lacks the database's marker
blob is refused while other replicas are live, becomes the database's store (with a
warning) when none is, and a store holding the marker (the same folder) passes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cove.blobs import LocalBlobStore
from cove.blobs.identity import marker_key, recorded
from cove.engine.engine import Engine
from cove.engine.leases import claim_blob_store, default_replica_id
from cove.engine.settings import Settings
from cove.errors import InternalError
from cove.server import create_app
from cove.store import open_store


def _settings(tmp_path: Path, name: str, database: str, blobs: str | None = None) -> Settings:
    return Settings(
        data_dir=tmp_path / name, database_url=database, blob_url=blobs, lease_seconds=3
    )


def _words(text: str) -> str:
    return " ".join(text.split())


def test_a_replica_with_its_own_blob_folder_is_refused_while_another_is_live(
    tmp_path: Path, postgres_url: str
) -> None:
    app_a = create_app(_settings(tmp_path, "a", postgres_url))  # <data>/blobs: the default
    with TestClient(app_a) as a:
        store_a = app_a.state.engine.blobs
        with pytest.raises(InternalError) as refused:
            Engine(_settings(tmp_path, "b", postgres_url))
        message = _words(str(refused.value))
        assert "COVE_BLOB_URL" in message and "docs/scaling.md" in message
        assert (tmp_path / "b" / "blobs").resolve().as_uri() in message  # its own store
        assert store_a.url in message  # the database's
        assert default_replica_id(str((tmp_path / "a").resolve())) in message  # who is live
        assert refused.value.details["live_replicas"] == [
            default_replica_id(str((tmp_path / "a").resolve()))
        ]

        # The same folder (as a shared disk would give it) holds the marker: B starts.
        shared = store_a.url
        with TestClient(create_app(_settings(tmp_path, "b", postgres_url, shared))) as b:
            listed = b.get("/status").json()["replica"]["replicas"]
            assert len(listed) == 2
        assert a.get("/healthz").status_code == 200


def test_with_no_live_replica_another_store_becomes_the_databases(
    tmp_path: Path, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app_a = create_app(_settings(tmp_path, "a", postgres_url))
    with TestClient(app_a):
        store_a = app_a.state.engine.blobs
    # A stopped (its replicas row is gone): B, with a folder of its own, starts and warns.
    app_b = create_app(_settings(tmp_path, "b", postgres_url))
    with caplog.at_level(logging.WARNING, logger="cove.engine.leases"), TestClient(app_b):
        store_b = app_b.state.engine.blobs
        warned = _words(caplog.text)
        assert "no other replica is live" in warned and store_a.url in warned
        assert "blob_missing" in warned and "COVE_BLOB_URL" in warned
        row = app_b.state.engine.store.read_sync(recorded)
        assert row is not None and row["url"] == store_b.url
        assert store_b.exists(marker_key(row["store_id"]))
        # Now A, back with its own folder, is the one refused.
        with pytest.raises(InternalError, match="COVE_BLOB_URL"):
            Engine(_settings(tmp_path, "a", postgres_url))


def test_of_replicas_starting_together_with_different_stores_only_the_first_passes(
    tmp_path: Path, postgres_url: str
) -> None:
    """The check joins ``replicas`` in its own transaction, before the engine starts: a
    second replica checking right after the first (neither started yet) sees it live."""
    store = open_store(postgres_url)
    try:
        first, second = LocalBlobStore(tmp_path / "one"), LocalBlobStore(tmp_path / "two")
        claim_blob_store(store, first, "one", 30)
        with pytest.raises(InternalError, match="live now: one"):
            claim_blob_store(store, second, "two", 30)
        claim_blob_store(store, LocalBlobStore(tmp_path / "one"), "three", 30)  # same folder
        claim_blob_store(store, first, "one", 30)  # a restart of the first
    finally:
        store.close()


def test_cleanup_keeps_the_marker_blob(tmp_path: Path, postgres_url: str) -> None:
    settings = _settings(tmp_path, "a", postgres_url)
    settings.blob_grace = 0  # every unreferenced blob goes at once
    app = create_app(settings)
    with TestClient(app) as client:
        engine: Engine = app.state.engine
        row = engine.store.read_sync(recorded)
        assert row is not None
        key = marker_key(row["store_id"])
        stray = engine.blobs.put(b"nothing refers to this")
        client.portal.call(app.state.cleaner.run)  # type: ignore[union-attr]
        assert not engine.blobs.exists(stray)
        assert engine.blobs.exists(key)


@pytest.mark.sqlite_only
def test_a_single_server_on_sqlite_records_no_store(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "data", database_url=None))
    with TestClient(app):
        engine: Engine = app.state.engine
        assert engine.store.read_sync(recorded) is None
        assert list(engine.blobs.list_blobs()) == []  # no marker either
