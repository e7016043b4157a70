"""Secrets reach exactly the functions that list them, and a missing one fails the deploy."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from cove.engine.settings import Settings
from cove.server import create_app
from tests.conftest import APPS, wait_until
from tests.integration.test_secrets_api import stored_ciphertext


def test_functions_see_only_the_secrets_they_list(tmp_path: Path) -> None:
    path = APPS / "secretive.py"
    files = {"code": (path.name, path.read_bytes())}
    settings = Settings(data_dir=tmp_path, container_idle_timeout=0.5)
    with TestClient(create_app(settings)) as client:
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
        assert b"s3cr3t" not in stored_ciphertext(client.app.state.engine.store)

        # Deleted after the deploy: once its idle container is gone, the next one cannot
        # start, and the call says why.
        assert client.delete("/secrets/API_TOKEN").status_code == 204

        def with_token_idle_gone() -> bool:
            rows = client.get("/applications/read_secrets/functions").json()["functions"]
            return next(r for r in rows if r["function"] == "with_token")["containers"] == []

        wait_until(with_token_idle_gone, 30, "the idle container to stop")
        r = client.post("/applications/read_secrets", params={"wait": 60})
        assert r.status_code == 500
        rid = r.headers["x-cove-request-id"]
        error = client.get(f"/applications/read_secrets/requests/{rid}").json()["error"]
        assert "API_TOKEN" in error["message"] and "not set" in error["message"]


def test_reserved_names_are_refused(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path))) as client:
        for name in ("PATH", "PYTHONPATH", "COVE_URL", "CUDA_VISIBLE_DEVICES"):
            r = client.put(f"/secrets/{name}", json={"value": "x"})
            assert r.status_code == 400 and "reserved" in r.json()["error"]["message"]
