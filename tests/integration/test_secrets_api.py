"""The secrets HTTP API, against a server in this process: values go in, never out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cove.engine.secrets import KEY_ENV, StoredSecrets
from cove.engine.settings import Settings
from cove.server import create_app
from cove.store import Store
from cove.store.schema import secrets as secrets_table


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(KEY_ENV, raising=False)
    return tmp_path / "data"


@pytest.fixture
def client(data: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=data))) as c:
        yield c


def error_of(r: Any) -> dict[str, Any]:
    body: dict[str, Any] = r.json()["error"]
    return body


def test_set_list_delete(client: TestClient, data: Path) -> None:
    assert client.get("/secrets").json() == {"secrets": []}
    r = client.put("/secrets/OPENAI_API_KEY", json={"value": "sk-abc-123"})
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert client.put("/secrets/A_TOKEN", json={"value": "tok-456"}).status_code == 204
    assert client.put("/secrets/A_TOKEN", json={"value": "tok-789"}).status_code == 204
    r = client.get("/secrets")
    assert r.status_code == 200
    assert r.json() == {"secrets": [{"name": "A_TOKEN"}, {"name": "OPENAI_API_KEY"}]}
    for value in ("sk-abc-123", "tok-456", "tok-789"):
        assert value not in r.text
    # stored encrypted in the database, readable by another store over it
    engine = client.app.state.engine
    assert b"sk-abc-123" not in stored_ciphertext(engine.store)
    assert StoredSecrets(data, engine.store).environment(["A_TOKEN"]) == {"A_TOKEN": "tok-789"}

    assert client.delete("/secrets/A_TOKEN").status_code == 204
    assert client.get("/secrets").json() == {"secrets": [{"name": "OPENAI_API_KEY"}]}


def test_delete_unknown_is_404(client: TestClient) -> None:
    r = client.delete("/secrets/NOT_THERE")
    assert r.status_code == 404
    error = error_of(r)
    assert "NOT_THERE" in error["message"]
    assert error["secret"] == "NOT_THERE"


@pytest.mark.parametrize("name", ["1BAD", "BAD-NAME", "bad.name", "x" * 201])
def test_bad_name_is_400(client: TestClient, name: str) -> None:
    r = client.put(f"/secrets/{name}", json={"value": "v"})
    assert r.status_code == 400, r.text
    assert error_of(r)["code"] == "invalid_input"
    assert "secret name" in error_of(r)["message"]
    assert client.delete(f"/secrets/{name}").status_code == 400
    assert client.get("/secrets").json() == {"secrets": []}


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"value": 12}, "must be a string"),
        ({"value": "x" * (64 * 1024 + 1)}, "too large"),
        ({"other": "x"}, '{"value": "..."}'),
        (["x"], '{"value": "..."}'),
    ],
)
def test_bad_body_is_400(client: TestClient, body: Any, match: str) -> None:
    r = client.put("/secrets/GOOD_NAME", json=body)
    assert r.status_code == 400, r.text
    assert match in error_of(r)["message"]
    assert client.get("/secrets").json() == {"secrets": []}


def test_non_json_body_is_400(client: TestClient) -> None:
    r = client.put("/secrets/GOOD_NAME", content=b"plain value")
    assert r.status_code == 400, r.text
    assert error_of(r)["code"] == "invalid_input"


def test_the_routes_use_the_engines_store(data: Path) -> None:
    app = create_app(Settings(data_dir=data))
    with TestClient(app) as c:
        store = app.state.secrets
        assert store is app.state.engine.secrets  # the one deploys and containers use
        assert c.put("/secrets/A", json={"value": "1"}).status_code == 204
        assert c.put("/secrets/B", json={"value": "2"}).status_code == 204
        assert app.state.secrets is store
    with TestClient(create_app(Settings(data_dir=data))) as c:  # a restarted server
        assert c.get("/secrets").json() == {"secrets": [{"name": "A"}, {"name": "B"}]}


def stored_ciphertext(store: Store) -> bytes:
    """Every secrets token in the database, as stored."""
    rows = store.read_sync(lambda conn: list(conn.execute(select(secrets_table.c.token))))
    return b"".join(bytes(r[0]) for r in rows)
