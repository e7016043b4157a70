"""The secret store: encrypted at rest, atomic writes, names and values checked."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from cove.engine.secrets import (
    KEY_ENV,
    MAX_NAME_LENGTH,
    MAX_VALUE_BYTES,
    MissingSecretsError,
    SecretStore,
)
from cove.errors import InternalError, InvalidInputError


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_round_trip_and_persistence(tmp_path: Path) -> None:
    store = SecretStore(tmp_path)
    assert store.names() == []
    store.set("B_KEY", "bee")
    store.set("A_KEY", "ay ü ✓")
    store.set("B_KEY", "bee 2")  # replaces
    assert store.get("A_KEY") == "ay ü ✓"
    assert store.get("B_KEY") == "bee 2"
    assert store.names() == ["A_KEY", "B_KEY"]
    with pytest.raises(KeyError):
        store.get("NOPE")
    # another store over the same folder (a restarted server) reads the same secrets
    again = SecretStore(tmp_path)
    assert again.get("A_KEY") == "ay ü ✓"
    assert again.delete("A_KEY") is True
    assert again.delete("A_KEY") is False
    assert store.names() == ["B_KEY"]


def test_empty_value_and_largest_value(tmp_path: Path) -> None:
    store = SecretStore(tmp_path)
    store.set("EMPTY", "")
    store.set("BIG", "x" * MAX_VALUE_BYTES)
    assert store.get("EMPTY") == ""
    assert len(store.get("BIG")) == MAX_VALUE_BYTES


def test_encrypted_at_rest(tmp_path: Path) -> None:
    store = SecretStore(tmp_path)
    value = "sk-very-secret-value-1234567890"
    store.set("OPENAI_API_KEY", value)
    raw = (tmp_path / "secrets.enc").read_bytes()
    assert value.encode() not in raw
    assert b"OPENAI_API_KEY" not in raw  # names are encrypted too
    key = (tmp_path / "secrets.key").read_text().strip()
    assert json.loads(Fernet(key.encode()).decrypt(raw)) == {"OPENAI_API_KEY": value}


def test_files_are_private(tmp_path: Path) -> None:
    SecretStore(tmp_path).set("A", "1")
    assert mode(tmp_path / "secrets.key") == 0o600
    assert mode(tmp_path / "secrets.enc") == 0o600


def test_creates_the_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "nested" / "data"
    SecretStore(data).set("A", "1")
    assert SecretStore(data).get("A") == "1"


def test_key_is_made_on_first_use_only(tmp_path: Path) -> None:
    store = SecretStore(tmp_path)
    assert not (tmp_path / "secrets.key").exists()  # constructing touches nothing
    store.set("A", "1")
    key = (tmp_path / "secrets.key").read_bytes()
    SecretStore(tmp_path).set("B", "2")
    assert (tmp_path / "secrets.key").read_bytes() == key


def test_key_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv(KEY_ENV, key)
    store = SecretStore(tmp_path)
    store.set("A", "one")
    assert not (tmp_path / "secrets.key").exists()  # the environment's key, no file
    raw = (tmp_path / "secrets.enc").read_bytes()
    assert json.loads(Fernet(key.encode()).decrypt(raw)) == {"A": "one"}
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(InternalError, match=r"secrets\.key is missing"):
        SecretStore(tmp_path).get("A")  # no new key over secrets made with another one


def test_explicit_key_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    key = Fernet.generate_key().decode()
    SecretStore(tmp_path, key=key).set("A", "one")
    raw = (tmp_path / "secrets.enc").read_bytes()
    assert json.loads(Fernet(key.encode()).decrypt(raw)) == {"A": "one"}


def test_wrong_key_is_a_clear_internal_error(tmp_path: Path) -> None:
    SecretStore(tmp_path).set("A", "one")
    other = SecretStore(tmp_path, key=Fernet.generate_key().decode())
    with pytest.raises(InternalError, match="encrypted with another key") as info:
        other.names()
    assert "COVE_SECRETS_KEY" in str(info.value)
    with pytest.raises(InternalError):
        other.set("B", "two")  # and it never overwrites what it cannot read
    assert SecretStore(tmp_path).names() == ["A"]


def test_invalid_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "not-a-fernet-key")
    with pytest.raises(InternalError, match="COVE_SECRETS_KEY does not hold a valid") as info:
        SecretStore(tmp_path).set("A", "1")
    assert "not-a-fernet-key" not in str(info.value)


def test_damaged_file(tmp_path: Path) -> None:
    store = SecretStore(tmp_path)
    store.set("A", "1")
    (tmp_path / "secrets.enc").write_bytes(b"garbage")
    with pytest.raises(InternalError, match="cannot decrypt"):
        store.get("A")


@pytest.mark.parametrize(
    "name",
    ["", "1ABC", "A-B", "A B", "A.B", "ÄPFEL", "A\n", "A=B", "x" * (MAX_NAME_LENGTH + 1)],
)
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    store = SecretStore(tmp_path)
    with pytest.raises(InvalidInputError, match="secret name"):
        store.set(name, "v")
    with pytest.raises(InvalidInputError):
        store.delete(name)
    assert not (tmp_path / "secrets.enc").exists()


@pytest.mark.parametrize("name", ["A", "_", "_a1", "OPENAI_API_KEY", "x" * MAX_NAME_LENGTH])
def test_good_names(tmp_path: Path, name: str) -> None:
    store = SecretStore(tmp_path)
    store.set(name, "v")
    assert store.names() == [name]


def test_bad_values_are_refused(tmp_path: Path) -> None:
    store = SecretStore(tmp_path)
    with pytest.raises(InvalidInputError, match=r"TOKEN.*too large"):
        store.set("TOKEN", "x" * (MAX_VALUE_BYTES + 1))
    with pytest.raises(InvalidInputError, match=r"TOKEN.*too large"):
        store.set("TOKEN", "é" * (MAX_VALUE_BYTES // 2 + 1))  # bytes, not characters
    with pytest.raises(InvalidInputError, match=r"TOKEN.*string"):
        store.set("TOKEN", 42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"TOKEN.*NUL"):
        store.set("TOKEN", "a\x00b")
    assert store.names() == []


def test_environment_holds_only_listed_secrets(tmp_path: Path) -> None:
    store = SecretStore(tmp_path)
    for name, value in {"A": "1", "B": "2", "C": "3"}.items():
        store.set(name, value)
    assert store.environment(["A", "C"]) == {"A": "1", "C": "3"}
    assert store.environment([]) == {}
    with pytest.raises(KeyError) as info:
        store.environment(["A", "ZED", "MISSING"])
    assert isinstance(info.value, MissingSecretsError)
    assert info.value.names == ["MISSING", "ZED"]
    assert str(info.value) == "secrets not set: MISSING, ZED"
    assert "1" not in str(info.value)


def test_missing(tmp_path: Path) -> None:
    store = SecretStore(tmp_path)
    store.set("A", "1")
    assert store.missing(["A"]) == []
    assert store.missing(["Z", "A", "B", "Z"]) == ["Z", "B"]
    assert SecretStore(tmp_path / "empty").missing(["A"]) == ["A"]


def test_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = SecretStore(tmp_path)
    for i in range(20):
        store.set(f"S{i}", str(i))
    store.delete("S3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secrets.enc", "secrets.key"]


def test_a_failed_write_keeps_the_old_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SecretStore(tmp_path)
    store.set("A", "1")

    def broken_replace(src: str, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("cove.engine.secrets.os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        store.set("B", "2")
    monkeypatch.undo()
    assert SecretStore(tmp_path).names() == ["A"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secrets.enc", "secrets.key"]


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    stores = [SecretStore(tmp_path), SecretStore(tmp_path)]  # two stores, one folder

    def write(i: int) -> None:
        for j in range(10):
            stores[i % 2].set(f"T{i}_{j}", f"{i}-{j}")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = SecretStore(tmp_path).names()
    assert len(names) == 80
    assert SecretStore(tmp_path).get("T7_9") == "7-9"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secrets.enc", "secrets.key"]
