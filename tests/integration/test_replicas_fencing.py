"""Leases in one process (cove.engine.leases): a replica that lost a request's lease cannot
finish it and drops it; on SQLite (one server) no lease is ever written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from fastapi.testclient import TestClient

from cove.engine.engine import Engine
from cove.engine.leases import LeaseLost
from cove.engine.settings import Settings
from cove.server import create_app
from cove.store.database import postgres_url as with_driver
from tests.conftest import APPS, wait_until


def _sql(url: str, statement: str, **params: Any) -> Any:
    engine = sqlalchemy.create_engine(with_driver(url))
    try:
        with engine.begin() as conn:
            result = conn.execute(sqlalchemy.text(statement), params)
            return result.scalar() if result.returns_rows else None
    finally:
        engine.dispose()


def _deploy(client: TestClient) -> None:
    path = APPS / "durable.py"
    r = client.post("/applications", files={"code": (path.name, path.read_bytes())})
    assert r.status_code == 201, r.text


def test_a_replica_that_lost_the_lease_cannot_finish_the_request(
    postgres_url: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_url, lease_seconds=3)
    app = create_app(settings)
    work = tmp_path / "work"
    work.mkdir()
    log = work / "effects.log"
    with TestClient(app) as client:
        engine: Engine = app.state.engine
        _deploy(client)
        body = {"log": str(log), "steps": 1, "block_at": 0}
        rid = client.post("/applications/durable_job", json=body).json()["request_id"]
        wait_until(lambda: log.exists() and "start step0" in log.read_text())
        assert _sql(postgres_url, "SELECT owner FROM request_leases") == engine.leases.replica_id
        # Another replica took the request over (this one was cut off for too long).
        _sql(
            postgres_url,
            "UPDATE request_leases SET owner = 'elsewhere', "
            "expires_at = extract(epoch from clock_timestamp()) + 300",
        )
        # The write that would finish it fails: the lease is not this replica's.
        with pytest.raises(LeaseLost):
            engine.store.write_sync(lambda c: engine.leases.fence(c, rid))
        (work / "go").write_text("go")
        wait_until(lambda: rid not in engine.live, 30, "the request to be dropped here")
        status = client.get(f"/applications/durable_job/requests/{rid}").json()["status"]
        assert status == "running"  # not finished by a replica that no longer holds it
    row = "SELECT status FROM requests WHERE id = :rid"
    assert _sql(postgres_url, row, rid=rid) == "running"
    assert _sql(postgres_url, "SELECT owner FROM request_leases") == "elsewhere"


@pytest.mark.sqlite_only
def test_on_sqlite_no_lease_is_written(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=None)
    app = create_app(settings)
    with TestClient(app) as client:
        engine: Engine = app.state.engine
        assert not engine.leases.enabled
        path = APPS / "core.py"
        r = client.post("/applications", files={"code": (path.name, path.read_bytes())})
        assert r.status_code == 201, r.text
        r = client.post("/applications/shout", params={"wait": 60}, json="quiet")
        assert r.status_code == 200 and r.json() == "QUIET"
        count = engine.store.read_sync(
            lambda c: c.execute(sqlalchemy.text("SELECT count(*) FROM request_leases")).scalar()
        )
        assert count == 0
