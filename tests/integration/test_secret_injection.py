"""Secrets reach exactly the functions that list them, and a missing one fails the deploy."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from cove.engine.settings import Settings
from cove.server import create_app
from tests.conftest import APPS


def test_functions_see_only_the_secrets_they_list(tmp_path: Path) -> None:
    path = APPS / "secretive.py"
    files = {"code": (path.name, path.read_bytes())}
    with TestClient(create_app(Settings(data_dir=tmp_path))) as client:
        r = client.post("/applications", files=files)
        assert r.status_code == 400
        message = r.json()["error"]["message"]
        assert "with_token" in message and "API_TOKEN" in message
        assert client.get("/applications/read_secrets").status_code == 404  # nothing stored

        assert client.put("/secrets/API_TOKEN", json={"value": "s3cr3t"}).status_code == 204
        assert client.put("/secrets/OTHER_SECRET", json={"value": "nope"}).status_code == 204
        assert client.post("/applications", files=files).status_code == 201
        out = client.post("/applications/read_secrets", params={"wait": 60}).json()
        assert out["with"] == {"API_TOKEN": "s3cr3t", "OTHER": None}
        assert out["without"] == {"API_TOKEN": None, "OTHER": None}
        assert out["entry"] == {"API_TOKEN": None, "OTHER": None}
        assert b"s3cr3t" not in (tmp_path / "secrets.enc").read_bytes()

        # Deleted after the deploy: the next container cannot start, and the call says why.
        assert client.delete("/secrets/API_TOKEN").status_code == 204
        for pool in list(client.app.state.engine.pools.values()):  # type: ignore[attr-defined]
            pool.retired = True
        client.app.state.engine.pools.clear()  # type: ignore[attr-defined]
        r = client.post("/applications/read_secrets", params={"wait": 60})
        assert r.status_code == 500


def test_reserved_names_are_refused(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path))) as client:
        for name in ("PATH", "PYTHONPATH", "COVE_URL", "CUDA_VISIBLE_DEVICES"):
            r = client.put(f"/secrets/{name}", json={"value": "x"})
            assert r.status_code == 400 and "reserved" in r.json()["error"]["message"]
