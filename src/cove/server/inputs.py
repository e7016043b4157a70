"""Turning an HTTP request body into an application's arguments, checked against its schema.

Empty body: no arguments. JSON body: the single argument (or, for several parameters, an
object keyed by parameter name). ``multipart/form-data``: one part per parameter, JSON
except for ``File`` parameters, which get the part's bytes and content type. A single
``File`` parameter also takes the raw body with its ``Content-Type``.

File bytes stream into the blob store as they arrive (past a small size kept in memory), so
the server's memory does not grow with an upload's size; a body over the configured limit is
refused (413) before it is stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jsonschema
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from cove.blobs import BlobStore, BlobWriter
from cove.errors import InvalidInputError, PayloadTooLargeError
from cove.sdk.file import INLINE_LIMIT, File
from cove.server import safejson

BATCH = 1024 * 1024  # bytes handed to a writer thread at once


def _bad(app: str, message: str, **details: Any) -> InvalidInputError:
    return InvalidInputError(f"application {app}: {message}", application=app, **details)


def _parse_json(app: str, raw: bytes, what: str) -> Any:
    try:
        return safejson.loads(raw)  # bounded: no deep nesting, NaN or giant numbers
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(app, f"{what} is not valid JSON: {exc}") from None


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"the request body is larger than the limit of {limit} bytes", limit=limit
    )


@dataclass
class Upload:
    """Where a body is read from and what it may weigh."""

    blobs: BlobStore
    limit: int | None = None
    json_limit: int | None = None  # a body read whole and parsed as JSON (not a file)


class _Sink:
    """One file's bytes: in memory while small, then streamed into a blob writer."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        self.buffer = bytearray()
        self.writer: BlobWriter | None = None

    def write(self, data: bytes) -> None:
        if self.writer is not None:
            self.writer.write(data)
            return
        self.buffer += data
        if len(self.buffer) > INLINE_LIMIT:
            self.writer = self.blobs.writer()
            self.writer.write(bytes(self.buffer))
            self.buffer = bytearray()

    def file(self, content_type: str) -> File:
        if self.writer is None:
            return File(bytes(self.buffer), content_type)
        return File.from_blob(self.writer.commit(), content_type, self.blobs)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()


async def _batches(request: Request, limit: int | None) -> AsyncIterator[bytes]:
    """The body in batches of about a MiB, refused past ``limit`` bytes."""
    size, pending, parts = 0, 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if limit is not None and size > limit:
            raise _too_large(limit)
        parts.append(chunk)
        pending += len(chunk)
        if pending >= BATCH:
            yield b"".join(parts)
            parts, pending = [], 0
    if parts:
        yield b"".join(parts)


async def read_arguments(
    request: Request, manifest: dict[str, Any], upload: Upload
) -> dict[str, Any]:
    """The arguments in ``request``'s body, validated; raises InvalidInputError naming what."""
    app = manifest["name"]
    params = {p["name"]: p for p in manifest["parameters"]}
    content_type = request.headers.get("content-type", "")
    declared = request.headers.get("content-length")
    if (
        upload.limit is not None
        and declared
        and declared.isdigit()
        and int(declared) > upload.limit
    ):
        raise _too_large(upload.limit)  # refused before a byte is read
    plist = list(params.values())
    if content_type.startswith("multipart/form-data"):
        values = await _from_multipart(app, request, content_type, params, upload)
    elif (
        len(plist) == 1
        and plist[0]["is_file"]
        and (plist[0].get("raw_body") or not content_type.startswith("application/json"))
    ):
        values = await _raw_file(request, plist[0]["name"], content_type, upload)
    else:
        limits = [n for n in (upload.limit, upload.json_limit) if n is not None]
        body = b"".join([b async for b in _batches(request, min(limits, default=None))])
        values = _from_body(app, body, content_type, params)
    _validate(app, manifest["parameters"], values)
    return values


async def _raw_file(
    request: Request, name: str, content_type: str, upload: Upload
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    sink = _Sink(upload.blobs)
    try:
        async for batch in _batches(request, upload.limit):
            if sink.writer is None and len(sink.buffer) + len(batch) <= INLINE_LIMIT:
                sink.write(batch)  # still in memory: no thread needed
            else:
                await loop.run_in_executor(None, sink.write, batch)
        if sink.writer is None and not bytes(sink.buffer).strip():
            return {}  # an empty body: no arguments
        file = await loop.run_in_executor(
            None, sink.file, content_type or "application/octet-stream"
        )
    except BaseException:
        await asyncio.shield(loop.run_in_executor(None, sink.abort))
        raise
    return {name: file}


@dataclass
class _Part:
    name: str = ""
    content_type: str | None = None
    field_name: bytes = b""
    header_value: bytes = b""
    sink: _Sink | None = None
    data: bytearray = field(default_factory=bytearray)


class _FormReader:
    """python-multipart's streaming parser: file parts go to blob writers as they arrive."""

    def __init__(self, boundary: bytes, params: dict[str, Any], blobs: BlobStore) -> None:
        self.params = params
        self.blobs = blobs
        self.part = _Part()
        self.done: list[_Part] = []
        callbacks: dict[str, Callable[..., None]] = {
            "on_part_begin": self._begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }
        self.parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]

    def _begin(self) -> None:
        self.part = _Part()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self.part.field_name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self.part.header_value += data[start:end]

    def _header_end(self) -> None:
        name = self.part.field_name.decode("latin-1").lower()
        value = self.part.header_value.decode("latin-1")
        if name == "content-disposition":
            _, options = parse_options_header(value)
            self.part.name = options.get(b"name", b"").decode("utf-8", "replace")
            param = self.params.get(self.part.name)
            if param is not None and param["is_file"]:
                self.part.sink = _Sink(self.blobs)
        elif name == "content-type":
            self.part.content_type = value.strip() or None
        self.part.field_name, self.part.header_value = b"", b""

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self.part.sink is not None:
            self.part.sink.write(data[start:end])
        elif self.part.name in self.params:
            self.part.data += data[start:end]  # JSON values: small, kept in memory
        # parts of unknown arguments are dropped as they arrive

    def _end(self) -> None:
        self.done.append(self.part)

    def write(self, data: bytes) -> None:
        self.parser.write(data)

    def finish(self) -> dict[str, File]:
        self.parser.finalize()
        return {
            p.name: p.sink.file(p.content_type or "text/plain")
            for p in self.done
            if p.sink is not None
        }

    def abort(self) -> None:
        for p in [*self.done, self.part]:
            if p.sink is not None:
                p.sink.abort()


async def _from_multipart(
    app: str, request: Request, content_type: str, params: dict[str, Any], upload: Upload
) -> dict[str, Any]:
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise _bad(app, "the multipart/form-data body is malformed: no boundary")
    loop = asyncio.get_running_loop()
    reader = _FormReader(boundary, params, upload.blobs)
    try:
        async for batch in _batches(request, upload.limit):
            await loop.run_in_executor(None, reader.write, batch)  # writes to disk or S3
        files = await loop.run_in_executor(None, reader.finish)
    except (InvalidInputError, PayloadTooLargeError):
        await asyncio.shield(loop.run_in_executor(None, reader.abort))
        raise
    except Exception as exc:
        await asyncio.shield(loop.run_in_executor(None, reader.abort))
        raise _bad(app, f"the multipart/form-data body is malformed: {exc}") from None
    except BaseException:
        await asyncio.shield(loop.run_in_executor(None, reader.abort))
        raise
    values: dict[str, Any] = dict(files)
    for part in reader.done:
        if part.sink is not None or part.name not in params:
            continue
        raw = bytes(part.data)
        try:
            values[part.name] = safejson.loads(raw)
        except (ValueError, UnicodeDecodeError):
            if params[part.name]["schema"].get("type") == "string":
                values[part.name] = raw.decode(errors="replace")  # plain text for a str
            else:
                raise _bad(
                    app, f"part '{part.name}' is not valid JSON", parameter=part.name
                ) from None
    return values


def _from_body(app: str, body: bytes, content_type: str, params: dict[str, Any]) -> dict[str, Any]:
    if not body.strip():
        return {}
    plist = list(params.values())
    value = _parse_json(app, body, "the request body")
    if not plist:
        return {}
    if len(plist) == 1:
        if plist[0]["is_file"]:
            raise _bad(
                app, f"parameter '{plist[0]['name']}' expects a file", parameter=plist[0]["name"]
            )
        return {plist[0]["name"]: value}
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k in params}
    raise _bad(
        app,
        f"it takes {len(plist)} parameters ({', '.join(params)}): send multipart/form-data "
        "with one part per parameter, or a JSON object keyed by parameter name",
    )


@lru_cache(maxsize=1024)
def _validator(schema_json: str) -> jsonschema.protocols.Validator:
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def _validate(app: str, params: list[dict[str, Any]], values: dict[str, Any]) -> None:
    for p in params:
        name = p["name"]
        if name not in values:
            if p["required"]:
                raise _bad(app, f"missing required argument '{name}'", parameter=name)
            continue
        value = values[name]
        if p["is_file"]:
            if not isinstance(value, File):
                raise _bad(app, f"parameter '{name}' expects a file upload", parameter=name)
            continue
        if isinstance(value, File):
            raise _bad(app, f"parameter '{name}' expects JSON, not a file", parameter=name)
        error = jsonschema.exceptions.best_match(
            _validator(json.dumps(p["schema"], sort_keys=True)).iter_errors(value)
        )
        if error is not None:
            where = "".join(f"[{x!r}]" for x in error.absolute_path)
            expected = p["schema"].get("title") or p["schema"].get("type") or "its schema"
            raise _bad(
                app,
                f"parameter '{name}'{where} does not match its type ({expected}): {error.message}",
                parameter=name,
            )


def fingerprint(values: dict[str, Any]) -> str:
    """A hash of the arguments, to tell a repeated request from a different one."""
    digest = hashlib.sha256()
    for name in sorted(values):
        value = values[name]
        digest.update(name.encode() + b"\0")
        if isinstance(value, File):
            # A stored file by its key (its SHA-256): no need to read it again.
            held = value.blob_key.encode() if value.blob_key else value.content
            digest.update(value.content_type.encode() + b"\0" + held)
        else:
            digest.update(json.dumps(value, sort_keys=True).encode())
        digest.update(b"\0")
    return digest.hexdigest()
