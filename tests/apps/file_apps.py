"""Applications that stream files: for tests/**/test_files*.py."""

from __future__ import annotations

import hashlib
import os
import tempfile

from cove import File, application, function

CHUNK = 1024 * 1024


def pattern(seed: bytes, size: int) -> bytes:
    """Deterministic bytes, so a client can check what it downloads without keeping it."""
    block = hashlib.sha256(seed).digest() * (CHUNK // 32)
    return (block * (size // len(block) + 1))[:size]


@application()
@function(ephemeral_disk=8, timeout=600)
def digest_and_echo(f: File) -> File:
    """Hashes the upload by streaming, then returns as many bytes again from a file on disk:
    the upload's SHA-256 (64 hex digits) followed by a pattern derived from it."""
    digest = hashlib.sha256()
    with f.open() as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    head = digest.hexdigest().encode()
    fd, path = tempfile.mkstemp(suffix=".bin")
    with os.fdopen(fd, "wb") as out:
        out.write(head)
        left = f.size - len(head)
        block = pattern(head, CHUNK)
        while left > 0:
            n = min(left, CHUNK)
            out.write(block[:n])
            left -= n
    return File.from_path(path, "application/x-cove-test")


@application()
@function()
def sized(n: int) -> File:
    """A File of n pattern bytes, made in memory."""
    return File(pattern(b"sized", n), "text/plain")


@function()
def hop(f: File, seen: list[str | None]) -> tuple[File, list[str | None]]:
    return f, [*seen, f.blob_key]


@application()
@function()
def relay(f: File) -> dict[str, object]:
    """Passes a File through three functions; each records the blob key it received."""
    seen: list[str | None] = []
    for _ in range(3):
        f, seen = hop(f, seen)
    return {"keys": seen, "size": f.size, "content_ok": f.content[:5] == pattern(b"in", 5)}


@application()
@function()
def pair(label: str, f: File) -> dict[str, object]:
    """A multipart upload: a JSON part and a file part."""
    with f.open() as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    return {"label": label, "size": f.size, "sha256": digest, "type": f.content_type}
