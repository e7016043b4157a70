"""Secrets in the database (cove.engine.secrets.StoredSecrets): every server over one
database sees the same ones, a server whose key cannot read them says so, and the
``secrets.enc`` files of earlier servers move into the database whole, once.

Runs on SQLite, and on PostgreSQL with ``COVE_TEST_DATABASE=postgresql``."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import select

from cove.engine.engine import Engine
from cove.engine.secrets import KEY_ENV, SecretStore, StoredSecrets
from cove.engine.settings import Settings
from cove.errors import InternalError
from cove.server import create_app
from cove.store import Store, open_store
from cove.store.schema import secrets as secrets_table
from tests.conftest import APPS


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


@pytest.fixture
def database(tmp_path: Path) -> str:
    """The test's database: SQLite in tmp_path, or the PostgreSQL one of the run."""
    (tmp_path / "shared").mkdir()
    return Settings(data_dir=tmp_path / "shared").database()


@pytest.fixture
def store(database: str) -> Iterator[Store]:
    opened = open_store(database)
    yield opened
    opened.close()


def tokens(store: Store) -> dict[str, bytes]:
    rows = store.read_sync(
        lambda c: list(c.execute(select(secrets_table.c.namespace, secrets_table.c.token)))
    )
    return {str(r[0]): bytes(r[1]) for r in rows}


def test_servers_over_one_database_share_secrets(tmp_path: Path, database: str) -> None:
    key = Fernet.generate_key().decode()
    # Two servers ("replicas"): their own data folders and connections, one database.
    a_store, b_store = open_store(database), open_store(database)
    try:
        a = StoredSecrets(tmp_path / "a", a_store, key=key)
        b = StoredSecrets(tmp_path / "b", b_store, key=key)
        a.set("API_TOKEN", "tok-1")
        a.set("OTHER", "x")
        assert b.names() == ["API_TOKEN", "OTHER"]
        assert b.environment(["API_TOKEN"]) == {"API_TOKEN": "tok-1"}
        assert b.delete("OTHER") is True
        assert a.names() == ["API_TOKEN"]
        assert a.delete("OTHER") is False
        # Encrypted with the key, names included; one row per namespace, and the key row.
        stored = tokens(a_store)
        assert set(stored) == {"", "default"}
        for token in stored.values():
            assert b"API_TOKEN" not in token and b"tok-1" not in token
        assert Fernet(key.encode()).decrypt(stored["default"]) == b'{"API_TOKEN": "tok-1"}'
        # Namespaces stay apart.
        red = StoredSecrets(tmp_path / "b", b_store, namespace="red", key=key)
        assert red.names() == []
        red.set("API_TOKEN", "red-tok")
        assert a.get("API_TOKEN") == "tok-1"
        assert StoredSecrets(tmp_path / "a", a_store, "red", key).get("API_TOKEN") == "red-tok"
    finally:
        a_store.close()
        b_store.close()


def test_concurrent_writers_over_two_connections_lose_nothing(
    tmp_path: Path, database: str
) -> None:
    key = Fernet.generate_key().decode()
    opened = [open_store(database), open_store(database)]
    try:
        stores = [StoredSecrets(tmp_path / f"r{i}", s, key=key) for i, s in enumerate(opened)]

        def write(i: int) -> None:
            for j in range(8):
                stores[i % 2].set(f"T{i}_{j}", f"{i}-{j}")

        threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(stores[0].names()) == 48
        assert stores[1].get("T5_7") == "5-7"
    finally:
        for s in opened:
            s.close()


def test_a_key_that_cannot_read_the_stored_secrets_is_a_clear_error(
    tmp_path: Path, store: Store
) -> None:
    StoredSecrets(tmp_path / "a", store).set("A", "one")  # the key made in a/secrets.key
    wrong = Fernet.generate_key().decode()
    other = StoredSecrets(tmp_path / "a", store, key=wrong)
    for attempt in (other.names, other.check, lambda: other.set("B", "two")):
        with pytest.raises(InternalError, match="encrypted with another key") as info:
            attempt()
        assert "same key" in str(info.value) and KEY_ENV in str(info.value)
    # Another namespace either: it never writes secrets under a second key.
    with pytest.raises(InternalError, match="encrypted with another key"):
        StoredSecrets(tmp_path / "a", store, "red", wrong).set("B", "two")
    assert set(tokens(store)) == {"", "default"}
    assert StoredSecrets(tmp_path / "a", store).names() == ["A"]
    # A server with no key at all never makes one over secrets it could not read.
    fresh = StoredSecrets(tmp_path / "fresh", store)
    with pytest.raises(InternalError, match="has no key to read them"):
        fresh.names()
    assert not (tmp_path / "fresh" / "secrets.key").exists()


def test_an_engine_with_the_wrong_key_does_not_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    with TestClient(create_app(settings)) as client:
        assert client.put("/secrets/A", json={"value": "1"}).status_code == 204
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    with pytest.raises(InternalError, match="encrypted with another key"):
        Engine(settings)


def _legacy(folder: Path, secrets: dict[str, str]) -> Path:
    """A folder as a server before migration 6 left it: secrets.enc and secrets.key."""
    old = SecretStore(folder)
    for name, value in secrets.items():
        old.set(name, value)
    return old.path


def test_secrets_files_move_into_the_database_once(tmp_path: Path, store: Store) -> None:
    data = tmp_path / "data"
    default_file = _legacy(data, {"A": "1", "B": "2"})
    red_file = _legacy(data / "namespaces" / "red", {"R": "red"})  # its own key file
    kept = default_file.read_bytes()
    # A name the database already has keeps its value there.
    StoredSecrets(data, store).set("B", "newer")

    target = StoredSecrets(data, store)
    assert target.adopt_files() == 2  # A, and red's R
    assert not default_file.exists() and not red_file.exists()
    assert target.environment(["A", "B"]) == {"A": "1", "B": "newer"}
    assert StoredSecrets(data, store, "red").get("R") == "red"

    # Left behind by a crash between the commit and the removal: not merged a second time
    # (a secret deleted since stays deleted).
    assert target.delete("A")
    default_file.write_bytes(kept)
    assert StoredSecrets(data, store).adopt_files() == 0
    assert not default_file.exists()
    assert target.names() == ["B"]


def test_a_file_that_cannot_be_read_moves_nothing(tmp_path: Path, store: Store) -> None:
    data = tmp_path / "data"
    default_file = _legacy(data, {"A": "1"})
    red_file = _legacy(data / "namespaces" / "red", {"R": "red"})
    (data / "namespaces" / "red" / "secrets.key").unlink()  # red's key is lost
    with pytest.raises(InternalError, match=r"secrets\.key is missing"):
        StoredSecrets(data, store).adopt_files()
    assert default_file.exists() and red_file.exists()
    assert tokens(store) == {}


def test_a_server_moves_its_secrets_file_in_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _legacy(data, {"API_TOKEN": "s3cr3t", "UNUSED": "x"})
    path = APPS / "secretive.py"
    settings = Settings(data_dir=data, container_idle_timeout=0.5)
    with TestClient(create_app(settings)) as client:
        assert not (data / "secrets.enc").exists()
        r = client.get("/secrets")
        assert r.json() == {"secrets": [{"name": "API_TOKEN"}, {"name": "UNUSED"}]}
        r = client.post("/applications", files={"code": (path.name, path.read_bytes())})
        assert r.status_code == 201, r.text  # the deploy finds API_TOKEN
        out = client.post("/applications/read_secrets", params={"wait": 60}).json()
        assert out["with"]["API_TOKEN"] == "s3cr3t"
    # The key stays where it was; a restarted server reads the same secrets.
    assert (data / "secrets.key").exists()
    with TestClient(create_app(settings)) as client:
        assert len(client.get("/secrets").json()["secrets"]) == 2


def test_a_copied_data_folder_adopts_nothing_twice(tmp_path: Path, store: Store) -> None:
    """Two replicas started from copies of one data folder: the second finds the file
    already moved (same content) and only removes its copy."""
    first = tmp_path / "first"
    _legacy(first, {"A": "1"})
    second = tmp_path / "second"
    shutil.copytree(first, second)
    assert StoredSecrets(first, store).adopt_files() == 1
    assert StoredSecrets(second, store).adopt_files() == 0
    assert not (second / "secrets.enc").exists()
    assert StoredSecrets(second, store).get("A") == "1"
