"""``GET /status``'s ``replica`` section: which replica answers, the live replicas over the
database, the requests it runs, and its takeovers (also ``cove_request_takeovers_total``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cove.engine.leases import default_replica_id
from cove.engine.settings import Settings
from cove.server import create_app
from tests.conftest import APPS, wait_until


def _job(log: Path, steps: int, block_at: int = -1) -> dict[str, object]:
    return {"log": str(log), "steps": steps, "block_at": block_at}


@pytest.mark.sqlite_only
def test_a_single_server_is_its_only_replica(tmp_path: Path) -> None:
    data = tmp_path / "data"
    work = tmp_path / "work"
    work.mkdir()
    with TestClient(create_app(Settings(data_dir=data, database_url=None))) as client:
        path = APPS / "durable.py"
        r = client.post("/applications", files={"code": (path.name, path.read_bytes())})
        assert r.status_code == 201, r.text
        r = client.post("/applications/durable_job", json=_job(work / "log", 1, 0))
        rid = r.json()["request_id"]
        replica = client.get("/status").json()["replica"]
        me = default_replica_id(str(data.resolve()))
        assert replica["id"] == me and replica["shared"] is False
        assert replica["lease_seconds"] is None
        assert [r["id"] for r in replica["replicas"]] == [me]
        assert replica["owned_requests"] == {"count": 1, "ids": [rid]}
        assert replica["takeovers"] == 0
        metrics = client.get("/metrics").text
        assert "cove_request_takeovers_total 0.0" in metrics
        (work / "go").write_text("go")
        wait_until(lambda: client.get("/status").json()["replica"]["owned_requests"]["count"] == 0)


def test_replicas_over_one_database_list_each_other(tmp_path: Path, postgres_url: str) -> None:
    def settings(name: str) -> Settings:
        return Settings(
            data_dir=tmp_path / name,
            database_url=postgres_url,
            blob_url=f"file://{tmp_path / 'blobs'}",  # one blob store for every replica
            lease_seconds=3,
        )

    with TestClient(create_app(settings("a"))) as a:
        with TestClient(create_app(settings("b"))) as b:
            ids = {default_replica_id(str((tmp_path / n).resolve())) for n in ("a", "b")}
            for client in (a, b):
                replica = client.get("/status").json()["replica"]
                assert replica["shared"] is True and replica["lease_seconds"] == 3
                assert {r["id"] for r in replica["replicas"]} == ids
                for row in replica["replicas"]:
                    assert row["renewed_at"] >= row["started_at"] > 0
                    assert row["requests"] == 0
            assert (
                b.get("/status").json()["replica"]["id"] != a.get("/status").json()["replica"]["id"]
            )
        # B stopped: it left the list at once (its row is deleted, not left to expire).
        listed = a.get("/status").json()["replica"]["replicas"]
        assert [r["id"] for r in listed] == [default_replica_id(str((tmp_path / "a").resolve()))]
