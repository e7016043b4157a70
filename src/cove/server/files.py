"""Answering with an output's bytes: streamed from the blob store, with HTTP ``Range``.

An output in a journal row is answered from memory; an output in the blob store (a returned
``File``, or any output past the inline limit) streams from it a MiB at a time, each read in a
thread, so the server's memory does not grow with the file. ``Range: bytes=a-b`` (one range)
answers ``206`` with ``Content-Range``; a range past the end answers ``416``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator

from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from cove.blobs import BlobRef, BlobStore
from cove.errors import RangeNotSatisfiableError
from cove.server.errors import error_response

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` (end exclusive) of a single ``bytes=`` range, or None to send it
    all (no header, several ranges, or one that does not parse: RFC 9110 lets us ignore
    those). Raises RangeNotSatisfiableError for a range outside the content."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if not first:  # a suffix: the last N bytes
        n = int(last)
        if n == 0:
            raise _unsatisfiable(size)
        return max(0, size - n), size
    start = int(first)
    end = size if not last else min(size, int(last) + 1)
    if last and int(last) < start:
        return None  # invalid, so ignored
    if start >= size:
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> RangeNotSatisfiableError:
    return RangeNotSatisfiableError(
        f"the requested range is outside the output's {size} bytes", size=size
    )


async def output_response(
    request: Request,
    blobs: BlobStore,
    output: bytes | BlobRef | None,
    content_type: str,
    headers: dict[str, str],
) -> Response:
    """The output's bytes (all, or the requested range) with its own content type."""
    output = output if output is not None else b""
    size = len(output) if isinstance(output, bytes) else output.size
    headers = {**headers, "Accept-Ranges": "bytes", "Content-Type": content_type}
    if isinstance(output, BlobRef):
        headers["ETag"] = f'"{output.key}"'
    try:
        span = parse_range(request.headers.get("range"), size)
    except RangeNotSatisfiableError as exc:
        response = error_response(exc)
        response.headers.update({**headers, "Content-Range": f"bytes */{size}"})
        response.headers["Content-Type"] = "application/json"
        return response
    start, end = span if span is not None else (0, size)
    status = 200
    if span is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    if isinstance(output, bytes):
        return Response(output[start:end], status_code=status, headers=headers)
    chunks = await _open(blobs, output.key, start, end)  # a missing blob fails here, not midway
    return StreamingResponse(_stream(chunks), status_code=status, headers=headers)


async def _open(blobs: BlobStore, key: str, start: int, end: int) -> Iterator[bytes]:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: blobs.read_range(key, start, end))


async def _stream(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    try:
        while True:
            chunk = await loop.run_in_executor(None, next, chunks, None)
            if chunk is None:
                return
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            await loop.run_in_executor(None, close)
