"""Blobs in any S3-compatible store (the ``cove[s3]`` extra: boto3).

Layout under ``s3://bucket/prefix/``: ``blobs/<sha256>`` for stored blobs and ``tmp/<id>``
for large uploads in progress. A blob's key is only known once its last byte is written, so
a small blob (one part) is put under its key at once, while a large one goes up as a
multipart upload to ``tmp/``, then is copied server-side to its key (S3 copies in parts
beyond 5 GB) and the temporary deleted. Unfinished multipart uploads and left-over
temporaries are what :meth:`S3BlobStore.list_partial` reports for cleanup.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from cove.blobs.base import CHUNK, BlobInfo, BlobRef, BlobStore, BlobWriter, Partial, check_key

MIN_PART = 5 * 1024 * 1024  # S3's smallest part (all but the last)


@dataclass(frozen=True)
class S3Options:
    """Where the S3-compatible store is and how to sign in (None: boto3's defaults)."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    part_size: int = 16 * 1024 * 1024


def _client(options: S3Options) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise RuntimeError("the S3 blob store needs boto3: pip install 'cove[s3]'") from exc
    return boto3.client(
        "s3",
        endpoint_url=options.endpoint_url,
        region_name=options.region,
        aws_access_key_id=options.access_key_id,
        aws_secret_access_key=options.secret_access_key,
        config=Config(retries={"max_attempts": 5, "mode": "standard"}),
    )


def _missing(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound", "NoSuchUpload")


class _S3Writer(BlobWriter):
    def __init__(self, store: S3BlobStore) -> None:
        super().__init__()
        self.store = store
        self.buffer = bytearray()
        self.tmp_key = f"{store.prefix}tmp/{uuid.uuid4().hex}"
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []
        self.done = False

    def _write(self, chunk: bytes) -> None:
        self.buffer += chunk
        while len(self.buffer) >= self.store.options.part_size:
            size = self.store.options.part_size
            part = bytes(self.buffer[:size])
            del self.buffer[:size]
            self._upload_part(part)

    def _upload_part(self, part: bytes) -> None:
        s3, bucket = self.store.client, self.store.bucket
        if self.upload_id is None:
            started = s3.create_multipart_upload(Bucket=bucket, Key=self.tmp_key)
            self.upload_id = started["UploadId"]
        number = len(self.parts) + 1
        sent = s3.upload_part(
            Bucket=bucket, Key=self.tmp_key, UploadId=self.upload_id, PartNumber=number, Body=part
        )
        self.parts.append({"ETag": sent["ETag"], "PartNumber": number})

    def commit(self) -> BlobRef:
        assert not self.done, "commit after commit or abort"
        s3, bucket = self.store.client, self.store.bucket
        key = self.key
        final = self.store.object_key(key)
        try:
            if self.upload_id is None:  # one part: straight to its key
                if not self.store.exists(key):
                    s3.put_object(Bucket=bucket, Key=final, Body=bytes(self.buffer))
            else:
                if self.buffer:
                    self._upload_part(bytes(self.buffer))
                s3.complete_multipart_upload(
                    Bucket=bucket,
                    Key=self.tmp_key,
                    UploadId=self.upload_id,
                    MultipartUpload={"Parts": self.parts},
                )
                self.upload_id = None
                if not self.store.exists(key):
                    # Managed copy: a single CopyObject up to 5 GB, UploadPartCopy beyond.
                    s3.copy({"Bucket": bucket, "Key": self.tmp_key}, bucket, final)
                s3.delete_object(Bucket=bucket, Key=self.tmp_key)
        except BaseException:
            self.abort()
            raise
        self.done = True
        self.buffer = bytearray()
        return BlobRef(key, self.size)

    def abort(self) -> None:
        self.buffer = bytearray()
        if self.done:
            return
        self.done = True
        s3, bucket = self.store.client, self.store.bucket
        if self.upload_id is not None:
            s3.abort_multipart_upload(Bucket=bucket, Key=self.tmp_key, UploadId=self.upload_id)
            self.upload_id = None
        if self.parts:
            s3.delete_object(Bucket=bucket, Key=self.tmp_key)


class _BodyReader(io.RawIOBase):
    """A botocore streaming body as a raw stream, for io.BufferedReader."""

    def __init__(self, body: Any) -> None:
        self.body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.body.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            self.body.close()
        super().close()


class S3BlobStore(BlobStore):
    """Blobs as objects under ``s3://bucket/prefix/``."""

    def __init__(self, bucket: str, prefix: str = "", options: S3Options | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.options = options or S3Options()
        if self.options.part_size < MIN_PART:
            raise ValueError(f"S3 part size must be at least {MIN_PART} bytes")
        self.client = _client(self.options)

    def object_key(self, key: str) -> str:
        return f"{self.prefix}blobs/{check_key(key)}"

    def writer(self) -> BlobWriter:
        return _S3Writer(self)

    def _get(self, key: str, byte_range: str | None = None) -> Any:
        extra = {"Range": byte_range} if byte_range else {}
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.object_key(key), **extra)
        except Exception as exc:
            if _missing(exc):
                raise self.missing(key) from None
            raise

    def open(self, key: str) -> BinaryIO:
        body = self._get(key)["Body"]
        return io.BufferedReader(_BodyReader(body), buffer_size=CHUNK)

    def read_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if end is not None and end <= start:
            self.size(key)  # still a BlobMissingError for a missing blob
            return iter(())
        last = "" if end is None else str(end - 1)
        body = self._get(key, f"bytes={start}-{last}" if (start or end is not None) else None)
        return _iter_body(body["Body"])

    def size(self, key: str) -> int:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except Exception as exc:
            if _missing(exc):
                raise self.missing(key) from None
            raise
        return int(head["ContentLength"])

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        pages = self.client.get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def list_blobs(self) -> Iterator[BlobInfo]:
        start = f"{self.prefix}blobs/"
        for obj in self._objects(start):
            name = obj["Key"][len(start) :]
            try:
                yield BlobInfo(check_key(name), int(obj["Size"]), obj["LastModified"].timestamp())
            except KeyError:
                continue

    def list_partial(self) -> Iterator[Partial]:
        tmp = f"{self.prefix}tmp/"
        pages = self.client.get_paginator("list_multipart_uploads")
        for page in pages.paginate(Bucket=self.bucket, Prefix=tmp):
            for upload in page.get("Uploads", []):
                started = upload["Initiated"].timestamp()
                yield Partial(f"upload:{upload['Key']}:{upload['UploadId']}", started)
        for obj in self._objects(tmp):
            yield Partial(f"object:{obj['Key']}", obj["LastModified"].timestamp())

    def delete_partial(self, partial_id: str) -> None:
        kind, _, rest = partial_id.partition(":")
        tmp = f"{self.prefix}tmp/"
        if kind == "upload":
            key, _, upload_id = rest.rpartition(":")
            if key.startswith(tmp):
                try:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=key, UploadId=upload_id
                    )
                except Exception as exc:
                    if not _missing(exc):
                        raise
        elif kind == "object" and rest.startswith(tmp):
            self.client.delete_object(Bucket=self.bucket, Key=rest)
        else:
            raise KeyError(partial_id)

    def environment(self) -> dict[str, str]:
        env = {"COVE_BLOB_URL": f"s3://{self.bucket}/{self.prefix}"}
        o = self.options
        for name, value in (
            ("COVE_BLOB_S3_ENDPOINT_URL", o.endpoint_url),
            ("COVE_BLOB_S3_REGION", o.region),
            ("COVE_BLOB_S3_ACCESS_KEY_ID", o.access_key_id),
            ("COVE_BLOB_S3_SECRET_ACCESS_KEY", o.secret_access_key),
        ):
            if value:
                env[name] = value
        env["COVE_BLOB_S3_PART_SIZE"] = str(o.part_size)
        return env


def _iter_body(body: Any) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(CHUNK)
    finally:
        body.close()
