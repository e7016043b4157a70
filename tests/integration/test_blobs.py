"""One blob-store suite, run against both backends: a local folder, and S3 through a real
S3-compatible server (moto in server mode on 127.0.0.1), not a mock of the client."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cove.blobs import BlobStore, LocalBlobStore, open_blob_store, store_from_env
from cove.errors import BlobMissingError, ErrorCode, PayloadTooLargeError
from tests.conftest import free_port

PART = 5 * 1024 * 1024  # S3's smallest part: multipart uploads start past it


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def s3_store(endpoint: str, prefix: str = "") -> BlobStore:
    import boto3

    from cove.blobs.s3 import S3Options

    bucket = f"cove-{uuid.uuid4().hex[:12]}"
    options = S3Options(endpoint, "us-east-1", "testing", "testing", part_size=PART)
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    return open_blob_store(f"s3://{bucket}/{prefix}", s3=options)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    endpoint = request.getfixturevalue("moto_endpoint")
    return s3_store(endpoint, "team/cove")


def chunks(total: int, size: int = 1024 * 1024, seed: int = 7) -> Iterator[bytes]:
    block = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield block[:n]
        sent += n


def test_put_get_is_content_addressed(store: BlobStore) -> None:
    key = store.put(b"payload")
    assert key == store.put(b"payload") == hashlib.sha256(b"payload").hexdigest()
    assert store.get(key) == b"payload"
    assert store.size(key) == 7
    assert store.exists(key)
    assert [b.key for b in store.list_blobs()] == [key]


def test_missing_and_malformed_keys(store: BlobStore) -> None:
    missing = hashlib.sha256(b"nothing").hexdigest()
    for bad in (missing, "../../etc/passwd", "ab"):
        with pytest.raises(KeyError):
            store.get(bad)
        with pytest.raises(KeyError):
            store.size(bad)
    with pytest.raises(KeyError):
        list(store.read_range(missing, 0, 10))
    assert not store.exists(missing)


def test_a_missing_blob_is_blob_missing_naming_it_and_the_store(store: BlobStore) -> None:
    missing = hashlib.sha256(b"gone").hexdigest()
    url = store.environment()["COVE_BLOB_URL"]
    for read in (store.get, store.size, store.open, lambda k: list(store.read_range(k, 0, 5))):
        with pytest.raises(BlobMissingError) as info:
            read(missing)
        err = info.value
        assert err.code is ErrorCode.BLOB_MISSING and isinstance(err, KeyError)
        assert err.details == {"key": missing, "store": url}
        assert str(err) == f"blob {missing} is missing from the blob store {url}"
    assert store.url == url


def test_streaming_put_multipart_and_ranges(store: BlobStore) -> None:
    total = 2 * PART + 12345  # several S3 parts plus a short last one
    expected = hashlib.sha256()
    for c in chunks(total):
        expected.update(c)
    ref = store.put_stream(chunks(total))
    assert (ref.key, ref.size) == (expected.hexdigest(), total)
    assert store.size(ref.key) == total
    whole = b"".join(chunks(total))
    assert b"".join(store.read_range(ref.key)) == whole
    assert b"".join(store.read_range(ref.key, PART - 3, PART + 5)) == whole[PART - 3 : PART + 5]
    assert b"".join(store.read_range(ref.key, total - 10)) == whole[-10:]
    assert b"".join(store.read_range(ref.key, 5, 5)) == b""
    with store.open(ref.key) as fh:
        assert fh.read(4) == whole[:4]
        assert hashlib.sha256(fh.read()).hexdigest() != ref.key  # the rest, not all of it
    with store.open(ref.key) as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == ref.key
    assert list(store.list_partial()) == []  # nothing temporary is left behind


def test_put_of_existing_content_keeps_one_blob(store: BlobStore) -> None:
    a = store.put_stream(chunks(PART + 1))
    b = store.put_stream(chunks(PART + 1))
    assert a == b
    assert [x.key for x in store.list_blobs()] == [a.key]
    assert list(store.list_partial()) == []


def test_put_file(store: BlobStore, tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"x" * 100_000)
    ref = store.put_file(path)
    assert ref.size == 100_000
    assert store.get(ref.key) == path.read_bytes()


def test_async_put_with_limit(store: BlobStore) -> None:
    async def body(total: int) -> AsyncIterator[bytes]:
        for c in chunks(total, 64 * 1024):
            yield c

    async def run() -> None:
        ref = await store.aput_stream(body(300_000), limit=300_000)
        assert ref.size == 300_000 and store.size(ref.key) == 300_000
        with pytest.raises(PayloadTooLargeError):
            await store.aput_stream(body(PART + 100), limit=PART)
        assert [b.key for b in store.list_blobs()] == [ref.key]
        assert list(store.list_partial()) == []  # the refused upload left nothing

    asyncio.run(run())


def test_abandoned_writer_is_a_partial_until_deleted(store: BlobStore) -> None:
    writer = store.writer()
    for c in chunks(PART + 10):  # past one part: S3 has a multipart upload open
        writer.write(c)
    partials = list(store.list_partial())
    assert partials, "an unfinished upload is visible to cleanup"
    assert all(p.started <= time.time() + 5 for p in partials)
    for p in partials:
        store.delete_partial(p.id)
    assert list(store.list_partial()) == []
    assert list(store.list_blobs()) == []


def test_delete(store: BlobStore) -> None:
    key = store.put(b"short-lived")
    store.delete(key)
    store.delete(key)  # gone already: no error
    assert not store.exists(key)
    assert list(store.list_blobs()) == []


def test_a_container_opens_the_same_store_from_its_environment(store: BlobStore) -> None:
    key = store.put(b"shared")
    env = store.environment()
    assert env["COVE_BLOB_URL"]
    other = store_from_env({**os.environ, **env})
    assert other is not None
    assert other.get(key) == b"shared"
    assert other.put(b"from a container") in {b.key for b in store.list_blobs()}


def test_local_store_paths_and_crash_leftovers(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    key = store.put(b"on disk")
    path = store.local_path(key)
    assert path is not None and path.read_bytes() == b"on disk"
    writer = store.writer()
    writer.write(b"half an upload")  # a crash now leaves only this temporary
    assert [p.id for p in store.list_partial()] == [writer.tmp.name]  # type: ignore[attr-defined]
    assert [b.key for b in store.list_blobs()] == [key]
