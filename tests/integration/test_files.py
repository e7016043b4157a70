"""Files through the HTTP API, on both blob backends (local folder; S3 on a moto server):
streaming uploads, File outputs with Range, Files passed by reference, limits, cleanup."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cove.blobs import BlobStore
from cove.engine.settings import Settings
from cove.server import create_app
from tests.apps.file_apps import pattern
from tests.conftest import APPS
from tests.integration.test_blobs import moto_endpoint, s3_store

__all__ = ["moto_endpoint"]  # the session fixture, shared with test_blobs


def settings_for(
    backend: str, data: Path, request: pytest.FixtureRequest, **extra: Any
) -> Settings:
    if backend == "local":
        return Settings(data_dir=data, **extra)
    endpoint = request.getfixturevalue("moto_endpoint")
    bucket_store = s3_store(endpoint, "cove")
    return Settings(
        data_dir=data,
        blob_url=f"s3://{bucket_store.bucket}/cove",  # type: ignore[attr-defined]
        blob_s3_endpoint_url=endpoint,
        blob_s3_region="us-east-1",
        blob_s3_access_key_id="testing",
        blob_s3_secret_access_key="testing",
        blob_s3_part_size=5 * 1024 * 1024,
        **extra,
    )


def open_client(settings: Settings) -> TestClient:
    client = TestClient(create_app(settings))
    client.__enter__()
    path = APPS / "file_apps.py"
    r = client.post("/applications", files={"code": (path.name, path.read_bytes())})
    assert r.status_code == 201, r.text
    return client


@pytest.fixture(scope="module", params=["local", "s3"])
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp(f"files-{request.param}")
    client = open_client(settings_for(request.param, data, request))
    yield client
    client.__exit__(None, None, None)


def blobs_of(client: TestClient) -> BlobStore:
    store: BlobStore = client.app.state.engine.blobs  # type: ignore[attr-defined]
    return store


def invoke(client: TestClient, app: str, **kwargs: Any) -> str:
    r = client.post(f"/applications/{app}", **kwargs)
    assert r.status_code == 200, r.text
    rid: str = r.json()["request_id"]
    r = client.get(f"/applications/{app}/requests/{rid}/output", params={"wait": 120})
    assert r.status_code == 200, r.text
    return rid


def expected_echo(upload: bytes) -> bytes:
    head = hashlib.sha256(upload).hexdigest().encode()
    return head + pattern(head, len(upload) - len(head))


def test_raw_upload_streams_to_a_blob_and_the_file_output_downloads(client: TestClient) -> None:
    upload = pattern(b"in", 3 * 1024 * 1024 + 17)  # past the inline limit: stored as a blob
    rid = invoke(
        client, "digest_and_echo", content=upload, headers={"Content-Type": "image/x-test"}
    )
    assert blobs_of(client).size(hashlib.sha256(upload).hexdigest()) == len(upload)
    r = client.get(f"/applications/digest_and_echo/requests/{rid}/output")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-cove-test"
    assert r.headers["content-length"] == str(len(upload))
    assert r.headers["accept-ranges"] == "bytes"
    assert r.content == expected_echo(upload)
    out_key = hashlib.sha256(r.content).hexdigest()
    assert r.headers["etag"] == f'"{out_key}"'  # the output is the container's blob itself
    assert blobs_of(client).size(out_key) == len(upload)


def test_range_requests(client: TestClient) -> None:
    upload = pattern(b"ranges", 200_000)
    rid = invoke(client, "digest_and_echo", content=upload)
    url = f"/applications/digest_and_echo/requests/{rid}/output"
    whole = expected_echo(upload)
    size = len(whole)

    def get(spec: str) -> Any:
        return client.get(url, headers={"Range": spec})

    r = get("bytes=0-63")
    assert r.status_code == 206
    assert r.content == hashlib.sha256(upload).hexdigest().encode()
    assert r.headers["content-range"] == f"bytes 0-63/{size}"
    assert r.headers["content-length"] == "64"
    r = get("bytes=100000-")
    assert (r.status_code, r.content) == (206, whole[100000:])
    r = get("bytes=-10")
    assert (r.status_code, r.content) == (206, whole[-10:])
    assert r.headers["content-range"] == f"bytes {size - 10}-{size - 1}/{size}"
    r = get(f"bytes=150000-{size * 2}")  # clipped to the end
    assert (r.status_code, r.content) == (206, whole[150000:])
    r = get(f"bytes={size}-")
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{size}"
    assert r.json()["error"]["code"] == "range_not_satisfiable"
    r = get("bytes=0-1,5-6")  # several ranges: answered whole (RFC 9110 allows ignoring)
    assert (r.status_code, r.content) == (200, whole)


def test_ranges_of_an_inline_output(client: TestClient) -> None:
    rid = invoke(client, "sized", json=100)
    r = client.get(f"/applications/sized/requests/{rid}/output", headers={"Range": "bytes=10-19"})
    assert (r.status_code, r.content) == (206, pattern(b"sized", 100)[10:20])
    assert r.headers["content-type"] == "text/plain"


def test_multipart_upload_streams_the_file_part(client: TestClient) -> None:
    data = pattern(b"part", 300_000)
    files = {"f": ("data.bin", data, "application/x-part")}
    r = client.post("/applications/pair", data={"label": "hello"}, files=files, params={"wait": 60})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "label": "hello",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "type": "application/x-part",
    }
    assert blobs_of(client).exists(hashlib.sha256(data).hexdigest())


def test_a_file_passes_through_three_functions_by_reference(client: TestClient) -> None:
    upload = pattern(b"in", 1024 * 1024 + 3)
    key = hashlib.sha256(upload).hexdigest()
    rid = invoke(client, "relay", content=upload)
    out = client.get(f"/applications/relay/requests/{rid}/output").json()
    assert out == {"keys": [key, key, key], "size": len(upload), "content_ok": True}
    same_size = [b for b in blobs_of(client).list_blobs() if b.size == len(upload)]
    assert [b.key for b in same_size] == [key]  # one blob: no function copied the bytes


def test_empty_and_small_uploads(client: TestClient) -> None:
    r = client.post("/applications/digest_and_echo", content=b"")
    assert r.status_code == 400 and r.json()["error"]["parameter"] == "f"
    rid = invoke(client, "relay", content=pattern(b"in", 100))  # small: travels inline
    out = client.get(f"/applications/relay/requests/{rid}/output").json()
    assert out == {"keys": [None, None, None], "size": 100, "content_ok": True}


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_uploads_over_the_limit_are_refused_before_they_are_stored(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = settings_for(backend, tmp_path / "data", request, max_upload_bytes=1_000_000)
    client = open_client(settings)
    try:
        before = {b.key for b in blobs_of(client).list_blobs()}  # the deployed code
        r = client.post("/applications/digest_and_echo", content=b"x" * 1_000_001)
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "payload_too_large"

        def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            for _ in range(20):
                yield b"y" * 100_000

        r = client.post("/applications/digest_and_echo", content=chunked())
        assert r.status_code == 413
        files = {"f": ("big.bin", b"z" * 1_200_000)}
        assert (
            client.post("/applications/pair", data={"label": "x"}, files=files).status_code == 413
        )
        assert {b.key for b in blobs_of(client).list_blobs()} == before
        assert list(blobs_of(client).list_partial()) == []
        invoke(client, "digest_and_echo", content=b"w" * 999_000)  # under it: fine
    finally:
        client.__exit__(None, None, None)


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_cleanup_after_deletion_retention_and_a_crashed_upload(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = settings_for(backend, tmp_path / "data", request, retention_days=1.0)
    # A crash in the middle of an upload, before this server started: a temporary is left.
    crashed = settings_for(backend, tmp_path / "data", request).model_copy(
        update={"blob_url": settings.blob_url}
    )
    from cove.blobs.config import blob_store_of

    writer = blob_store_of(crashed).writer()
    writer.write(pattern(b"crash", 6 * 1024 * 1024))  # past one S3 part: a multipart upload
    assert list(blob_store_of(crashed).list_partial())
    time.sleep(0.01)  # the server below starts strictly after the crash (clock resolution)
    client = open_client(settings)
    try:
        store = blobs_of(client)
        cleaner = client.app.state.cleaner  # type: ignore[attr-defined]
        client.portal.call(cleaner.run)  # type: ignore[union-attr]
        assert list(store.list_partial()) == []  # one pass removed it

        upload = pattern(b"old", 2 * 1024 * 1024)
        rid = invoke(client, "digest_and_echo", content=upload)
        output = client.get(f"/applications/digest_and_echo/requests/{rid}/output").content
        keys = {hashlib.sha256(upload).hexdigest(), hashlib.sha256(output).hexdigest()}
        kept = pattern(b"kept", 2 * 1024 * 1024)
        invoke(client, "relay", content=kept)
        client.portal.call(cleaner.run)  # type: ignore[union-attr]
        assert keys <= {b.key for b in store.list_blobs()}  # referenced: kept

        # Retention: both finished requests are now "old" (a retention of 86 microseconds).
        cleaner.engine.settings.retention_days = 1e-9
        client.portal.call(cleaner.run)  # type: ignore[union-attr]
        assert client.get(f"/applications/digest_and_echo/requests/{rid}").status_code == 404
        remaining = {b.key for b in store.list_blobs()}
        assert not keys & remaining
        assert hashlib.sha256(kept).hexdigest() not in remaining  # relay's request is old too

        cleaner.engine.settings.retention_days = None
        fresh = pattern(b"fresh", 1024 * 1024)
        invoke(client, "relay", content=fresh)
        assert hashlib.sha256(fresh).hexdigest() in {b.key for b in store.list_blobs()}
        assert client.delete("/applications/relay").status_code == 204
        client.portal.call(cleaner.run)  # type: ignore[union-attr]
        assert hashlib.sha256(fresh).hexdigest() not in {b.key for b in store.list_blobs()}
    finally:
        client.__exit__(None, None, None)
