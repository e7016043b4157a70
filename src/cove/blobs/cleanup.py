"""Retention and blob cleanup: old requests go, and so do blobs nothing refers to any more.

A pass (at start, then every ``cleanup_interval`` seconds, and after an application is
deleted):

1. with ``retention_days``, removes finished requests older than that, with all their rows;
2. finds every blob the journal refers to: key columns (code, arguments, outputs, state) and
   ``File`` references inside pickled payloads, found by their ``cove-blob:<key>`` marker
   without unpickling anything (the server never unpickles user values), and the store's
   marker blob (``cove.blobs.identity``);
3. deletes the blobs nothing refers to: at once when they belonged to what was just
   deleted, otherwise once older than ``blob_grace`` (a blob is written before the row that
   refers to it commits, so a young one may be in use);
4. drops unfinished uploads (temporary files, S3 multipart uploads) that a crashed writer
   left: the first pass after a start drops every one begun before the start, later passes
   those older than ``blob_grace``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, select

from cove.blobs.base import BlobStore
from cove.blobs.identity import marker_keys
from cove.store import schema

if TYPE_CHECKING:
    from cove.engine.engine import Engine

log = logging.getLogger(__name__)
MARKER = re.compile(rb"cove-blob:([0-9a-f]{64})")
FINISHED = ("succeeded", "failed", "cancelled")


@dataclass
class Report:
    """What one pass removed."""

    requests: int = 0
    blobs: list[str] = field(default_factory=list)
    partials: list[str] = field(default_factory=list)


@dataclass
class _Marks:
    keys: set[str] = field(default_factory=set)
    pickled_blobs: set[str] = field(default_factory=set)  # payload blobs to scan for markers


def scan(data: bytes | None) -> set[str]:
    """The blob keys a payload refers to (``File`` references in a pickle)."""
    if not data:
        return set()
    return {m.decode() for m in MARKER.findall(data)}


def _mark(conn: Connection, request_ids: Iterable[str] | None = None) -> _Marks:
    """Blob references in the journal (all of it, or the rows of ``request_ids``)."""
    marks = _Marks()
    calls, state = schema.function_calls, schema.request_state
    call_q = select(
        calls.c.args_inline,
        calls.c.args_blob,
        calls.c.output_inline,
        calls.c.output_blob,
        calls.c.content_type,
    )
    state_q = select(state.c.value_inline, state.c.value_blob)
    if request_ids is not None:
        ids = list(request_ids)
        call_q = call_q.where(calls.c.request_id.in_(ids))
        state_q = state_q.where(state.c.request_id.in_(ids))
    else:
        for (code,) in conn.execute(select(schema.app_versions.c.code_blob)):
            marks.keys.add(code)
        marks.keys |= marker_keys(conn)  # the store's identity (cove.blobs.identity)
    for args_inline, args_blob, out_inline, out_blob, content_type in conn.execute(call_q):
        marks.keys |= scan(args_inline) | scan(out_inline)
        if args_blob:  # arguments are always pickles
            marks.keys.add(args_blob)
            marks.pickled_blobs.add(args_blob)
        if out_blob:
            marks.keys.add(out_blob)
            if content_type == "application/pickle":
                marks.pickled_blobs.add(out_blob)
    for value_inline, value_blob in conn.execute(state_q):
        marks.keys |= scan(value_inline)
        if value_blob:
            marks.keys.add(value_blob)
            marks.pickled_blobs.add(value_blob)
    return marks


def _scan_blob(blobs: BlobStore, key: str) -> set[str]:
    """Markers in a stored pickle, read in chunks (a marker may straddle two)."""
    found: set[str] = set()
    tail = b""
    try:
        for chunk in blobs.read_range(key):
            data = tail + chunk
            found |= scan(data)
            tail = data[-80:]
    except KeyError:
        pass
    return found


def referenced(
    conn: Connection, blobs: BlobStore, request_ids: Iterable[str] | None = None
) -> set[str]:
    marks = _mark(conn, request_ids)
    for key in marks.pickled_blobs:
        marks.keys |= _scan_blob(blobs, key)
    return marks.keys


def _request_tables() -> list[Any]:
    # Every table keyed by request (including ones later migrations add), requests last.
    tables = [t for t in schema.metadata.sorted_tables if "request_id" in t.c]
    return [*tables, schema.requests]


def _delete_requests(conn: Connection, ids: list[str]) -> None:
    for table in _request_tables():
        column = table.c.id if table is schema.requests else table.c.request_id
        conn.execute(delete(table).where(column.in_(ids)))


def _expired(conn: Connection, cutoff: float) -> list[str]:
    r = schema.requests
    rows = conn.execute(
        select(r.c.id).where(r.c.status.in_(FINISHED), r.c.finished_at < cutoff)
    ).all()
    return [row[0] for row in rows]


def keys_of_app(conn: Connection, blobs: BlobStore, app: str) -> set[str]:
    """The blobs an application's versions and requests refer to (before it is deleted)."""
    r, v = schema.requests, schema.app_versions
    ids = [row[0] for row in conn.execute(select(r.c.id).where(r.c.app == app))]
    codes = {row[0] for row in conn.execute(select(v.c.code_blob).where(v.c.app == app))}
    return codes | referenced(conn, blobs, ids)


class Cleaner:
    """Runs cleanup passes for one engine (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.started_at = time.time()
        self.first = True
        # Blobs whose rows are being deleted -> when that began: removed at the next pass
        # unless written again since (a put of existing content refreshes its time).
        self.doomed: dict[str, float] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._soon: set[asyncio.Task[Report]] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for task in [t for t in (self._task, *self._soon) if t is not None]:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                await self.run()
            except Exception:
                log.exception("cleanup pass failed")
            await asyncio.sleep(self.engine.settings.cleanup_interval)

    def run_soon(self) -> None:
        """A pass in the background (after a deletion)."""
        task = asyncio.get_running_loop().create_task(self.run())
        self._soon.add(task)
        task.add_done_callback(self._soon.discard)

    async def forget_app(self, app: str) -> None:
        """Before an application is deleted: its blobs go at the next pass (no grace)."""
        blobs, since = self.engine.blobs, time.time()
        keys = await self.engine.store.read(lambda c: keys_of_app(c, blobs, app))
        self.doomed.update(dict.fromkeys(keys, since))

    async def run(self) -> Report:
        """One pass."""
        async with self._lock:
            report = Report()
            doomed, self.doomed = self.doomed, {}
            settings = self.engine.settings
            if settings.retention_days is not None:
                cutoff = time.time() - settings.retention_days * 86400
                ids = await self._expire(cutoff)
                report.requests = len(ids)
                if ids:
                    blobs, since = self.engine.blobs, time.time()
                    keys = await self.engine.store.read(lambda c: referenced(c, blobs, ids))
                    doomed.update(dict.fromkeys(keys, since))
                    await self.engine.store.write(lambda c: _delete_requests(c, ids))
                    for rid in ids:
                        self.engine.recent.discard(rid)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._sweep, doomed, report)
            self.first = False
            if report.requests or report.blobs or report.partials:
                log.info(
                    "cleanup: %d request(s), %d blob(s), %d unfinished upload(s) removed",
                    report.requests,
                    len(report.blobs),
                    len(report.partials),
                )
            return report

    async def _expire(self, cutoff: float) -> list[str]:
        ids = await self.engine.store.read(lambda c: _expired(c, cutoff))
        return [rid for rid in ids if rid not in self.engine.live]

    def _sweep(self, doomed: dict[str, float], report: Report) -> None:
        blobs, grace = self.engine.blobs, self.engine.settings.blob_grace
        # Before marking: a blob written after this moment is young and kept by the grace.
        now = time.time()
        live = self.engine.store.read_sync(lambda c: referenced(c, blobs))
        for info in blobs.list_blobs():
            if info.key in live:
                continue
            if info.modified < doomed.get(info.key, now - grace):
                blobs.delete(info.key)
                report.blobs.append(info.key)
        cutoff = max(self.started_at, now - grace) if self.first else now - grace
        for partial in blobs.list_partial():
            if partial.started < cutoff:
                blobs.delete_partial(partial.id)
                report.partials.append(partial.id)
