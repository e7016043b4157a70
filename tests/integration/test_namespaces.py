"""Namespaces: a key of one sees nothing of another (404, never 403), secrets included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cove.cli.keys_cmd import create_key_offline
from cove.engine.secrets import KEY_ENV
from cove.engine.settings import Settings
from cove.server import create_app
from tests.conftest import APPS

CODE = {"code": ("guarded.py", (APPS / "guarded.py").read_bytes())}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """Two namespaces, each with an admin key, its own API_TOKEN, and guarded.py deployed."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    data = tmp_path / "data"
    root = create_key_offline(data, "admin")["key"]
    settings = Settings(data_dir=data, auth=True)
    with TestClient(create_app(settings)) as client:
        keys = {}
        for ns in ("red", "blue"):
            r = client.post("/keys", json={"role": "admin", "namespace": ns}, headers=bearer(root))
            assert r.status_code == 201, r.text
            keys[ns] = r.json()["key"]
            r = client.put(
                "/secrets/API_TOKEN", json={"value": f"{ns}-token"}, headers=bearer(keys[ns])
            )
            assert r.status_code == 204
            r = client.post("/applications", files=CODE, headers=bearer(keys[ns]))
            assert r.status_code == 201, r.text
            assert {a["name"] for a in r.json()["applications"]} == {
                "echo",
                "public_echo",
                "read_token",
            }
        keys["root"] = root
        yield client, keys


def test_each_namespace_sees_only_its_own(setup: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = setup
    red, blue = bearer(keys["red"]), bearer(keys["blue"])
    r = client.post("/applications/echo?wait=60", json="from red", headers=red)
    assert r.json() == "from red"
    rid = r.headers["x-cove-request-id"]
    listed = client.get("/applications", headers=red).json()["applications"]
    assert sorted(a["name"] for a in listed) == ["echo", "public_echo", "read_token"]
    assert all("~" not in a["url"] for a in listed)
    detail = client.get(f"/applications/echo/requests/{rid}", headers=red).json()
    assert detail["application"] == "echo"

    # blue has an application of the same name, but red's request is not there
    for path in (
        f"/applications/echo/requests/{rid}",
        f"/applications/echo/requests/{rid}/output",
        f"/applications/echo/requests/{rid}/logs",
        f"/applications/echo/requests/{rid}/timeline",
        f"/applications/echo/requests/{rid}/progress?format=json",
    ):
        r = client.get(path, headers=blue)
        assert r.status_code == 404, (path, r.text)
    assert client.delete(f"/applications/echo/requests/{rid}", headers=blue).status_code == 404
    r = client.post(f"/applications/echo/requests/{rid}/replay", headers=blue)
    assert r.status_code == 404
    assert client.get("/applications/echo/requests", headers=blue).json()["requests"] == []
    # the engine's own name for red's application is not reachable either
    for who in (blue, bearer(keys["root"])):
        assert client.get("/applications/red~echo", headers=who).status_code == 404
        r = client.get(f"/applications/red~echo/requests/{rid}", headers=who)
        assert r.status_code == 404
    # default (the root key's namespace) has nothing deployed
    assert client.get("/applications", headers=bearer(keys["root"])).json()["applications"] == []
    # blue deleting its echo leaves red's alone
    assert client.delete("/applications/echo", headers=blue).status_code == 204
    assert client.get("/applications/echo", headers=blue).status_code == 404
    assert client.get(f"/applications/echo/requests/{rid}", headers=red).status_code == 200


def test_secrets_are_per_namespace(setup: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = setup
    for ns in ("red", "blue"):
        r = client.post("/applications/read_token?wait=60", headers=bearer(keys[ns]))
        assert r.status_code == 200, r.text
        assert r.json() == f"{ns}-token"
        assert client.get("/secrets", headers=bearer(keys[ns])).json() == {
            "secrets": [{"name": "API_TOKEN"}]
        }
    assert client.get("/secrets", headers=bearer(keys["root"])).json() == {"secrets": []}
    assert client.delete("/secrets/API_TOKEN", headers=bearer(keys["red"])).status_code == 204
    assert client.get("/secrets", headers=bearer(keys["blue"])).json()["secrets"] != []


def test_keys_are_per_namespace(setup: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = setup
    red = bearer(keys["red"])
    r = client.post("/keys", json={"role": "invoke", "namespace": "blue"}, headers=red)
    assert r.status_code == 403
    r = client.post("/keys", json={"role": "invoke"}, headers=red)
    assert r.json()["namespace"] == "red"
    red_keys = client.get("/keys", headers=red).json()["keys"]
    assert {k["namespace"] for k in red_keys} == {"red"}
    blue_key_id = keys["blue"].split("_")[1]
    assert client.delete(f"/keys/{blue_key_id}", headers=red).status_code == 404
    assert client.get("/applications", headers=bearer(keys["blue"])).status_code == 200
    # machine-wide endpoints are for admins of default only
    assert client.get("/status", headers=red).status_code == 403


def test_unauthenticated_requests_name_their_namespace(
    setup: tuple[TestClient, dict[str, str]],
) -> None:
    client, _keys = setup
    assert client.post("/applications/public_echo", json="x").status_code == 401  # not in default
    r = client.post(
        "/applications/public_echo?wait=60", json="x", headers={"X-Cove-Namespace": "red"}
    )
    assert r.status_code == 200 and r.json() == "public x"
    rid = r.headers["x-cove-request-id"]
    r = client.get(
        f"/applications/public_echo/requests/{rid}", headers={"X-Cove-Namespace": "blue"}
    )
    assert r.status_code == 404


def test_without_auth_everything_is_in_default(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path))) as client:
        assert client.post("/applications", files=CODE).status_code == 400  # API_TOKEN unset
        assert client.put("/secrets/API_TOKEN", json={"value": "v"}).status_code == 204
        assert client.post("/applications", files=CODE).status_code == 201
        assert client.post("/applications/echo?wait=60", json="x").json() == "x"
        assert client.get("/applications/default~echo").status_code == 404
        assert client.app.state.engine.secrets.names() == ["API_TOKEN"]
