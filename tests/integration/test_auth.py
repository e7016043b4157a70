"""API keys and roles, against a server in this process started with auth on."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cove.cli.keys_cmd import create_key_offline
from cove.engine.ids import is_request_id, new_request_id
from cove.engine.secrets import KEY_ENV
from cove.engine.settings import Settings
from cove.server import create_app
from tests.conftest import APPS

CODE = {"code": ("guarded.py", (APPS / "guarded.py").read_bytes())}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(KEY_ENV, raising=False)
    return tmp_path / "data"


@pytest.fixture
def admin(data: Path) -> str:
    """The bootstrap key: made directly in the data folder, before the server starts."""
    key: str = create_key_offline(data, "admin")["key"]
    return key


@pytest.fixture
def client(data: Path, admin: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=data, auth=True))) as c:
        yield c


def make_key(client: TestClient, admin: str, role: str, **body: Any) -> str:
    r = client.post("/keys", json={"role": role, **body}, headers=bearer(admin))
    assert r.status_code == 201, r.text
    key: str = r.json()["key"]
    return key


def deploy(client: TestClient, key: str) -> None:
    r = client.put("/secrets/API_TOKEN", json={"value": "t0k3n"}, headers=bearer(key))
    assert r.status_code == 204, r.text
    r = client.post("/applications", files=CODE, headers=bearer(key))
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic YWRtaW46YWRtaW4="}, {"Authorization": "Bearer "}],
)
def test_no_key_or_a_malformed_header_is_401(client: TestClient, headers: dict[str, str]) -> None:
    for method, path in [("GET", "/applications"), ("GET", "/secrets"), ("POST", "/applications")]:
        r = client.request(method, path, headers=headers)
        assert r.status_code == 401, (method, path, r.text)
        error = r.json()["error"]
        assert error["code"] == "unauthenticated"
        assert "API key" in error["message"]


def test_an_unknown_or_forged_key_is_401(client: TestClient, admin: str) -> None:
    key_id = admin.split("_")[1]
    forged = f"cove_{key_id}_{'A' * 43}"  # a real id with the wrong secret
    for key in ("nonsense", "cove_000000000000_" + "x" * 43, forged):
        r = client.get("/applications", headers=bearer(key))
        assert r.status_code == 401, r.text
        assert "not valid" in r.json()["error"]["message"]


def test_health_and_the_openapi_document_need_no_key(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "Cove"


def test_roles(client: TestClient, admin: str) -> None:
    invoker = make_key(client, admin, "invoke")
    deployer = make_key(client, admin, "deploy")

    # invoke: no deploys, secrets or keys
    for method, path, kwargs in [
        ("POST", "/applications", {"files": CODE}),
        ("PUT", "/secrets/API_TOKEN", {"json": {"value": "x"}}),
        ("GET", "/secrets", {}),
        ("GET", "/keys", {}),
        ("POST", "/keys", {"json": {"role": "admin"}}),
        ("GET", "/status", {}),
        ("GET", "/metrics", {}),
    ]:
        r = client.request(method, path, headers=bearer(invoker), **kwargs)
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["error"]["code"] == "forbidden"
    # deploy: no secrets or keys
    assert client.get("/secrets", headers=bearer(deployer)).status_code == 403
    assert (
        client.post("/keys", json={"role": "invoke"}, headers=bearer(deployer)).status_code == 403
    )
    # the admin sets the secret, the deployer deploys
    r = client.put("/secrets/API_TOKEN", json={"value": "t0k3n"}, headers=bearer(admin))
    assert r.status_code == 204
    assert client.post("/applications", files=CODE, headers=bearer(deployer)).status_code == 201

    # invoke: calls applications and reads their requests
    r = client.post("/applications/echo?wait=60", json="hi", headers=bearer(invoker))
    assert r.status_code == 200 and r.json() == "hi"
    rid = r.headers["x-cove-request-id"]
    assert is_request_id(rid)
    r = client.get(f"/applications/echo/requests/{rid}", headers=bearer(invoker))
    assert r.json()["status"] == "succeeded"
    listed = client.get("/applications/echo/requests", headers=bearer(invoker)).json()
    assert [x["id"] for x in listed["requests"]] == [rid]
    assert client.get(f"/applications/echo/requests/{rid}/logs", headers=bearer(invoker)).is_success
    # ... but cannot delete applications
    assert client.delete("/applications/echo", headers=bearer(invoker)).status_code == 403
    assert client.delete("/applications/echo", headers=bearer(deployer)).status_code == 204
    # an admin of default reads the machine-wide endpoints
    assert client.get("/status", headers=bearer(admin)).status_code == 200
    assert client.get("/metrics", headers=bearer(admin)).status_code == 200


@pytest.mark.sqlite_only  # reads the SQLite file itself
def test_keys_are_listed_without_secrets_stored_hashed_and_revoked_at_once(
    client: TestClient, admin: str, data: Path
) -> None:
    r = client.post("/keys", json={"role": "invoke", "name": "ci"}, headers=bearer(admin))
    created = r.json()
    key = created["key"]
    assert created["namespace"] == "default" and created["role"] == "invoke"
    listed = client.get("/keys", headers=bearer(admin)).json()["keys"]
    assert [k["id"] for k in listed] == [admin.split("_")[1], created["id"]]
    assert all("key" not in k for k in listed) and key not in str(listed)

    db = sqlite3.connect(data / "cove.db")
    rows = db.execute("SELECT id, secret_hash FROM api_keys").fetchall()
    db.close()
    assert (created["id"], hashlib.sha256(key.encode()).hexdigest()) in rows
    assert key.encode() not in (data / "cove.db").read_bytes()

    assert client.get("/applications", headers=bearer(key)).status_code == 200
    assert client.delete(f"/keys/{created['id']}", headers=bearer(admin)).status_code == 204
    assert client.get("/applications", headers=bearer(key)).status_code == 401
    assert client.delete(f"/keys/{created['id']}", headers=bearer(admin)).status_code == 404
    revoked = client.get("/keys", headers=bearer(admin)).json()["keys"]
    assert next(k for k in revoked if k["id"] == created["id"])["revoked"] is True


@pytest.mark.parametrize(
    "body", [{"role": "root"}, {"role": "admin", "namespace": "Bad Space"}, ["admin"], {}]
)
def test_bad_key_requests_are_400(client: TestClient, admin: str, body: Any) -> None:
    r = client.post("/keys", json=body, headers=bearer(admin))
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_input"


def test_unauthenticated_requests_only_where_the_application_allows_them(
    client: TestClient, admin: str
) -> None:
    deploy(client, admin)
    # allowed: invoke, then status and output by the (unguessable) request id
    r = client.post("/applications/public_echo", json="x")
    assert r.status_code == 200, r.text
    rid = r.json()["request_id"]
    assert is_request_id(rid)
    r = client.get(f"/applications/public_echo/requests/{rid}/output", params={"wait": 60})
    assert r.status_code == 200 and r.json() == "public x"
    assert client.get(f"/applications/public_echo/requests/{rid}").json()["status"] == "succeeded"
    # not the listing of its requests, nor their logs, nor anything else
    assert client.get("/applications/public_echo/requests").status_code == 401
    assert client.get(f"/applications/public_echo/requests/{rid}/logs").status_code == 401
    assert client.get("/applications/public_echo").status_code == 401
    assert client.delete(f"/applications/public_echo/requests/{rid}").status_code == 401
    # an application that does not allow it, or one that does not exist: the same 401
    assert client.post("/applications/echo", json="x").status_code == 401
    assert client.post("/applications/nothing_here", json="x").status_code == 401
    # a guessed request id of another application is not found
    other = client.post("/applications/echo?wait=60", json="s", headers=bearer(admin))
    other_id = other.headers["x-cove-request-id"]
    r = client.get(f"/applications/public_echo/requests/{other_id}/output")
    assert r.status_code == 404


def test_request_ids_carry_128_random_bits() -> None:
    ids = [new_request_id() for _ in range(2000)]
    assert all(is_request_id(i) and len(i) == 36 for i in ids)
    # 36 base32 characters: 48 bits of time then 128 random bits (the last 26 characters
    # and 3 bits of the 10th); ids made in the same millisecond differ there.
    random_parts = {i[10:] for i in ids}
    assert len(random_parts) == 2000
