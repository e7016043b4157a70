"""The store: migrations from an empty database, group commit, one bad write isolated."""

from __future__ import annotations

import gc
import threading
import weakref
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, text

from cove.blobs import LocalBlobStore
from cove.engine.ids import is_request_id, new_request_id
from cove.store import open_store
from cove.store.migrations import MIGRATIONS, current_version
from cove.store.schema import progress
from tests.conftest import wait_until


def test_migrations_build_every_table_from_empty(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        names = set(inspect(store.reader_engine).get_table_names())
        assert {
            "applications",
            "app_versions",
            "requests",
            "function_calls",
            "request_state",
            "progress",
            "metrics",
            "cove_schema_version",
        } <= names
        assert store.read_sync(current_version) == MIGRATIONS[-1][0]
        mode = store.read_sync(lambda c: c.execute(text("PRAGMA journal_mode")).scalar())
        assert mode == "wal"
    finally:
        store.close()
    again = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")  # re-opening is a no-op
    try:
        assert again.read_sync(current_version) == MIGRATIONS[-1][0]
    finally:
        again.close()


def _row(i: int) -> dict[str, object]:
    return {
        "request_id": "r",
        "call_id": str(i),
        "current": i,
        "total": 100,
        "message": None,
        "created_at": 0.0,
    }


def test_concurrent_writes_are_group_committed(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}", "FULL")
    try:
        threads = [
            threading.Thread(
                target=lambda i=i: store.write_sync(lambda c: c.execute(progress.insert(), _row(i)))
            )
            for i in range(200)
        ]
        before = store.commits
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        count = store.read_sync(
            lambda c: c.execute(select(func.count()).select_from(progress)).scalar()
        )
        assert count == 200
        assert store.commits - before < 200  # several writes shared each commit
    finally:
        store.close()


def test_a_failing_write_does_not_sink_its_batch(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    results: list[object] = []
    done = threading.Event()

    def record(result: object, error: BaseException | None) -> None:
        results.append(error if error is not None else "ok")
        if len(results) == 3:
            done.set()

    try:
        store.submit(lambda c: c.execute(progress.insert(), _row(1)), record)
        store.submit(lambda c: c.execute(text("INSERT INTO nowhere VALUES (1)")), record)
        store.submit(lambda c: c.execute(progress.insert(), _row(2)), record)
        assert done.wait(30)
        assert results.count("ok") == 2
        assert any(isinstance(r, Exception) for r in results)
        with pytest.raises(Exception, match="nowhere"):
            store.write_sync(lambda c: c.execute(text("INSERT INTO nowhere VALUES (1)")))
        count = store.read_sync(
            lambda c: c.execute(select(func.count()).select_from(progress)).scalar()
        )
        assert count == 2
    finally:
        store.close()


def test_a_committed_write_is_not_kept_alive_by_the_writer(tmp_path: Path) -> None:
    """The writer waits for the next write holding nothing of the last batch: a write's
    closure (in the engine: a finished request and all its calls) is freed once done."""

    class Payload:
        pass

    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    release, started, finished = threading.Event(), threading.Event(), threading.Event()
    try:

        def hold(_: object) -> None:
            started.set()
            release.wait(30)

        store.submit(hold)  # the writer is busy with this one...
        assert started.wait(30)
        payload = Payload()
        alive = weakref.ref(payload)
        for i in (1, 2):  # ...so these two share the next batch
            store.submit(
                lambda c, p=payload, i=i: c.execute(progress.insert(), _row(i)) and p,
                lambda *_, i=i: finished.set() if i == 2 else None,
            )
        del payload
        release.set()
        assert finished.wait(30)
        wait_until(lambda: gc.collect() >= 0 and alive() is None, 10, "the payload freed")
    finally:
        store.close()


def test_local_blobs_are_content_addressed_and_immutable(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    key = blobs.put(b"payload")
    assert key == blobs.put(b"payload") == LocalBlobStore.key_of(b"payload")
    assert blobs.get(key) == b"payload"
    assert not list((tmp_path / "blobs").rglob(".tmp-*"))
    blobs.delete(key)
    with pytest.raises(KeyError):
        blobs.get(key)
    with pytest.raises(KeyError):
        blobs.get("../../etc/passwd")


def test_request_ids_are_unique_and_time_ordered() -> None:
    ids = [new_request_id() for _ in range(1000)]
    assert len(set(ids)) == 1000 and all(is_request_id(i) for i in ids)
    assert ids[0][:9] <= ids[-1][:9]


def test_lazy_writes_share_the_next_commit_or_flush_soon(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        flushed = threading.Event()
        store.submit(
            lambda c: c.execute(progress.insert(), _row(1)), lambda r, e: flushed.set(), lazy=True
        )
        assert flushed.wait(10)  # alone, a lazy write still commits (after a short delay)
        before = store.commits
        for i in range(2, 12):
            store.submit(lambda c, i=i: c.execute(progress.insert(), _row(i)), lazy=True)
        store.write_sync(lambda c: c.execute(progress.insert(), _row(99)))
        assert store.commits - before == 1  # ten lazy writes rode along with the durable one
        count = store.read_sync(
            lambda c: c.execute(select(func.count()).select_from(progress)).scalar()
        )
        assert count == 12
    finally:
        store.close()


def test_writes_commit_in_submission_order_lazy_or_not(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        # A lazy insert, then a durable update of the same row: the update must see the row.
        store.submit(lambda c: c.execute(progress.insert(), _row(5)), lazy=True)
        updated = store.write_sync(
            lambda c: (
                c.execute(
                    progress.update().where(progress.c.call_id == "5").values(message="done")
                ).rowcount
            )
        )
        assert updated == 1
        # A durable write, then a lazy one submitted later: the lazy one comes after it.
        store.submit(lambda c: c.execute(progress.insert(), _row(6)))
        store.submit(
            lambda c: c.execute(
                progress.update().where(progress.c.call_id == "6").values(message="later")
            ),
            lazy=True,
        )
        store.write_sync(lambda c: None)
        message = store.read_sync(
            lambda c: c.execute(
                select(progress.c.message).where(progress.c.call_id == "6")
            ).scalar()
        )
        assert message == "later"
    finally:
        store.close()


def test_an_older_database_is_migrated_forward(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    from cove.store import migrations

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = create_engine(url)
    with engine.begin() as conn:  # a database as version 1 left it
        migrations.current_version(conn)
        _, step = migrations.MIGRATIONS[0]
        step(conn)
        conn.execute(migrations.schema.schema_version.insert().values(version=1, applied_at=0.0))
    engine.dispose()
    store = open_store(url)
    try:
        assert store.read_sync(current_version) == MIGRATIONS[-1][0]
        names = set(inspect(store.reader_engine).get_table_names())
        assert {"call_attempts", "request_replays"} <= names
    finally:
        store.close()
