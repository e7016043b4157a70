"""The store on PostgreSQL (skips where PostgreSQL is not installed; see tests/postgres.py):
migrations apply once even when several servers start together, and requests recorded by one
engine are resumed from the database by the next."""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy
from fastapi.testclient import TestClient

from cove.engine.settings import Settings
from cove.server import create_app
from cove.store import open_store
from cove.store.database import postgres_url as with_driver
from cove.store.migrations import MIGRATIONS
from tests.conftest import APPS


def test_servers_starting_together_migrate_once(postgres_url: str) -> None:
    stores, errors = [], []

    def start() -> None:
        try:
            stores.append(open_store(postgres_url))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(stores) == 4
    for store in stores:
        store.close()
    engine = sqlalchemy.create_engine(with_driver(postgres_url))
    with engine.connect() as conn:
        versions = [r[0] for r in conn.exec_driver_sql("SELECT version FROM cove_schema_version")]
    engine.dispose()
    assert sorted(versions) == [number for number, _ in MIGRATIONS]  # each applied once


def test_a_request_round_trip_and_its_journal_on_postgres(
    postgres_url: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_url)
    app = create_app(settings)
    with TestClient(app) as client:
        path = APPS / "core.py"
        r = client.post("/applications", files={"code": (path.name, path.read_bytes())})
        assert r.status_code == 201, r.text
        r = client.post("/applications/shout", params={"wait": 60}, json="quiet")
        assert r.status_code == 200 and r.json() == "QUIET"
        rid = r.headers["x-cove-request-id"]
    assert not (tmp_path / "data" / "cove.db").exists()  # nothing went to SQLite
    # A new engine on the same database finds the request, its output and its calls.
    with TestClient(create_app(settings)) as client:
        status = client.get(f"/applications/shout/requests/{rid}").json()
        assert status["status"] == "succeeded"
        assert [c["function"] for c in status["function_calls"]] == ["shout"]
        assert client.get(f"/applications/shout/requests/{rid}/output").json() == "QUIET"


def test_a_postgres_url_without_the_driver_name_gets_psycopg() -> None:
    assert with_driver("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert with_driver("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert with_driver("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
