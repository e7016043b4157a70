"""Which limit a body gets: a body parsed as JSON is bounded by max_json_bytes whatever its
content type says, while a raw file for a File parameter, often sent with no content type at
all, streams to the blob store past that bound."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.conftest import deployed_client

LIMIT = 64 * 1024


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with deployed_client(tmp_path / "data", "file_apps.py", "core.py", max_json_bytes=LIMIT) as c:
        yield c


def chunks(size: int) -> Iterator[bytes]:  # no Content-Length: the server learns as it reads
    for _ in range(size // 8192):
        yield b"7" * 8192


def test_a_json_body_without_a_content_type_is_bounded(client: TestClient) -> None:
    r = client.post("/applications/shout", content=chunks(4 * LIMIT))
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payload_too_large"
    assert client.get("/applications/shout/requests").json()["requests"] == []  # nothing kept


def test_a_raw_file_without_a_content_type_is_not(client: TestClient) -> None:
    r = client.post(
        "/applications/digest_and_echo", params={"wait": 120}, content=chunks(4 * LIMIT)
    )
    assert r.status_code == 200, r.text
    # digest_and_echo hashed all of it and echoed as many bytes, its digest first.
    assert len(r.content) == 4 * LIMIT
    assert r.content[:64].decode() == hashlib.sha256(b"7" * 4 * LIMIT).hexdigest()
