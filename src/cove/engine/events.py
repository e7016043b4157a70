"""A request's event stream and its calls' logs: journaled, and fanned out to live readers.

The engine reports what happens to a request (it started, a call attempt started or
finished, a progress update, the request finished) and what its calls printed; each gets
the next number of its request's stream (``seq``, the Server-Sent Events id). Entries are
kept in memory while the request runs (and a while after) so readers follow them live,
and journaled with lazy writes: they commit with the next durable write or within
``LAZY_FLUSH_SECONDS``, since nobody waits on them. A reader that resumes from a number
gets the journal's entries after it, then the live ones.

Listeners (Prometheus counters, OpenTelemetry spans) receive every event as it happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cove.store import journal as j
from cove.store import observations as obs

if TYPE_CHECKING:
    from cove.engine.model import Call, RequestRun
    from cove.store import Store

log = logging.getLogger(__name__)

#: JSON outputs up to this size travel inline in the ``request_finished`` event.
INLINE_OUTPUT_LIMIT = 8192
#: Events and log lines of a request kept in memory, each, for live readers once they are
#: journaled (older ones come from the journal): a request's memory does not grow with its
#: number of calls.
EVENT_WINDOW = 5000
LOG_WINDOW = 5000
#: Finished requests whose streams stay in memory, for readers that arrive just after: at
#: most this many, holding at most ``RECENT_WEIGHT`` entries and calls together (the newest
#: one is kept whatever its size). Readers of an older one read the journal.
RECENT_FEEDS = 256
RECENT_WEIGHT = 20_000
FINAL = ("succeeded", "failed", "cancelled")


@dataclass(slots=True)
class Entry:
    """One numbered entry of a request's event stream (``kind``: the event type) or its log
    (``kind == "log"``)."""

    seq: int
    kind: str
    at: float
    data: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"id": self.seq, "type": self.kind, "at": iso(self.at), **self.data}


Listener = Callable[[str, str, Entry], None]
"""Called with ``(request_id, application, event)`` for every event, on the event loop."""


class Stream:
    """Numbered entries in memory, and a signal that wakes readers when one is added.

    At most ``window`` entries stay once they are journaled (``journaled``: the last number
    known committed); older ones are read from the journal. Entries not journaled yet always
    stay, so a reader never misses one between the journal and memory."""

    def __init__(self, next_seq: int, window: int) -> None:
        self.items: deque[Entry] = deque()
        self.window = window
        self.journaled = next_seq - 1  # (set by the writer thread after each commit)
        self.next_seq = next_seq
        self._changed: asyncio.Event | None = None  # made when a reader first asks

    def changed(self) -> asyncio.Event:
        """A signal set by the next :meth:`append` (take it before reading the items)."""
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def append(self, kind: str, at: float, data: dict[str, Any]) -> Entry:
        entry = Entry(self.next_seq, kind, at, data)
        self.next_seq += 1
        items = self.items
        items.append(entry)
        if len(items) > self.window:
            self.trim()
        # Wake every reader waiting on the current signal; later readers get a new one.
        # Nobody following (most requests): no signal is made at all.
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()
        return entry

    def trim(self) -> None:
        """Drop the oldest journaled entries beyond the window."""
        items, journaled = self.items, self.journaled
        while len(items) > self.window and items[0].seq <= journaled:
            items.popleft()


@dataclass(slots=True)
class CallInfo:
    """The latest attempt of a call, as its ``call_started`` event told."""

    function: str
    attempt: int
    container: str
    started: float


@dataclass(eq=False)
class Feed:
    """The streams of one request in this server."""

    request_id: str
    app: str
    events: Stream
    logs: Stream
    calls: dict[str, CallInfo] = field(default_factory=dict)
    done: bool = False
    weight: int = 0  # entries and calls held, counted when it finished


class EventLog:
    """Every request's events and logs: emitted by the engine, read by the HTTP API."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.feeds: dict[str, Feed] = {}
        self.recent: OrderedDict[str, Feed] = OrderedDict()
        self._recent_weight = 0
        self.listeners: list[Listener] = []
        # Rows waiting for the writer; one lazy write drains them all.
        self._rows: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
        self._rows_lock = threading.Lock()
        # Set when other replicas share the database (cove.engine.leases): a request run
        # elsewhere is followed by reading its journaled entries this often.
        self.poll_interval: float | None = None
        # Set by cove.engine.leases when replicas share the database: ``fence(conn, ids)``
        # says which requests this replica may no longer write for (their rows are dropped)
        # and ``refusal(request_id)`` counts a write refused.
        self.fence: Callable[[Any, set[str]], set[str]] | None = None
        self.refusal: Callable[[str], None] | None = None

    # -- what the engine reports --------------------------------------------------------
    def opened(self, run: RequestRun) -> None:
        """A new request: its stream starts at 1."""
        self._open(run, 0, 0, resumed=False)

    async def resumed(self, run: RequestRun) -> None:
        """A request runs again (after a restart, or replayed): its stream goes on."""
        last_event, last_log = await self.store.read(lambda c: obs.last_seqs(c, run.id))
        earlier = self.recent.get(run.id)
        if earlier is not None:  # its last entries may not be journaled yet
            last_event = max(last_event, earlier.events.next_seq - 1)
            last_log = max(last_log, earlier.logs.next_seq - 1)
        self._open(run, last_event, last_log, resumed=True)

    def _open(self, run: RequestRun, last_event: int, last_log: int, resumed: bool) -> None:
        self.forget(run.id)
        events, logs = Stream(last_event + 1, EVENT_WINDOW), Stream(last_log + 1, LOG_WINDOW)
        feed = Feed(run.id, run.app, events, logs)
        self.feeds[run.id] = feed
        data = {
            "application": run.app,
            "application_version": run.version.version,
            "resumed": resumed,
        }
        self._emit(feed, "request_started", data)

    def call_started(self, call: Call, container: str) -> None:
        feed = self.feeds.get(call.run.id)
        if feed is None:
            return
        retry = call.call_id in feed.calls
        feed.calls[call.call_id] = CallInfo(call.function, call.attempts, container, time.time())
        data = {
            "call_id": call.call_id,
            "function": call.function,
            "parent_id": call.parent.call_id if call.parent is not None else None,
            "attempt": call.attempts,
            "container": container,
            "retry": retry,
        }
        self._emit(feed, "call_started", data)

    def call_finished(self, call: Call, status: str, error: dict[str, Any] | None) -> None:
        """An attempt ended: ``succeeded``, ``failed``, ``lost`` (its container died) or
        ``tail_call`` (it handed its output over to another call)."""
        feed = self.feeds.get(call.run.id)
        if feed is None:
            return
        info = feed.calls.get(call.call_id)
        now = time.time()
        data = {
            "call_id": call.call_id,
            "function": call.function,
            "attempt": call.attempts,
            "container": info.container if info else None,
            "status": status,
            "duration": round(now - info.started, 6) if info else None,
            "error": _brief(error),
        }
        self._emit(feed, "call_finished", data, now)

    def progress(
        self, request_id: str, call_id: str, current: float, total: float, message: str | None
    ) -> None:
        feed = self.feeds.get(request_id)
        if feed is None:
            return
        info = feed.calls.get(call_id)
        data = {
            "call_id": call_id,
            "function": info.function if info else None,
            "current": current,
            "total": total,
            "message": message,
        }
        self._emit(feed, "progress", data)

    def finished(self, run: RequestRun, status: str, error: dict[str, Any] | None) -> None:
        feed = self.feeds.pop(run.id, None)
        if feed is None:
            return
        data: dict[str, Any] = {"status": status, "error": _brief(error)}
        root = run.calls.get("0")
        if status == "succeeded" and root is not None:
            data.update(output_fields(run.app, run.id, root.output, root.content_type))
        feed.done = True
        self._emit(feed, "request_finished", data)
        feed.weight = len(feed.calls) + len(feed.events.items) + len(feed.logs.items)
        self.recent[run.id] = feed
        self._recent_weight += feed.weight
        while len(self.recent) > RECENT_FEEDS or (
            self._recent_weight > RECENT_WEIGHT and len(self.recent) > 1
        ):
            self._recent_weight -= self.recent.popitem(last=False)[1].weight

    def forget(self, request_id: str) -> None:
        """Drop a finished request's streams from memory (its readers read the journal)."""
        feed = self.recent.pop(request_id, None)
        if feed is not None:
            self._recent_weight -= feed.weight

    def logs(self, container: str, function: str, lines: list[tuple[Any, ...]]) -> None:
        """Lines a container captured: ``(request_id, call_id, stream, time, level, text)``."""
        for request_id, call_id, stream, at, level, text in lines:
            feed = self._feed(request_id)
            if feed is None:
                log.debug("log line of unknown request %s dropped", request_id)
                continue
            info = feed.calls.get(call_id)
            same = info is not None and info.container == container
            data = {
                "call_id": call_id,
                "function": info.function if info else function,
                "attempt": info.attempt if info and same else None,
                "container": container,
                "stream": stream,
                "level": level,
                "message": text,
            }
            entry = feed.logs.append("log", at, data)
            self._journal(1, {"request_id": request_id, "seq": entry.seq, "created_at": at, **data})

    def _emit(self, feed: Feed, kind: str, data: dict[str, Any], at: float | None = None) -> None:
        entry = feed.events.append(kind, at or time.time(), data)
        row = {
            "request_id": feed.request_id,
            "seq": entry.seq,
            "kind": kind,
            "data": data,
            "created_at": entry.at,
        }
        self._journal(0, row)
        for listener in self.listeners:
            try:
                listener(feed.request_id, feed.app, entry)
            except Exception:
                log.exception("event listener failed")

    def _journal(self, table: int, row: dict[str, Any]) -> None:
        with self._rows_lock:
            first = not self._rows[0] and not self._rows[1]
            self._rows[table].append(row)
        if first:  # one lazy write takes every row added until it runs
            self.store.submit(self._drain, self._journaled, lazy=True)

    def _drain(self, conn: Any) -> tuple[dict[str, int], dict[str, int]]:
        """Journal the rows added since the last drain; returns the last event and log
        numbers written per request."""
        with self._rows_lock:
            events, logs = self._rows
            self._rows = ([], [])
        if self.fence is not None:  # rows of requests another replica runs now: dropped
            refused = self.fence(conn, {r["request_id"] for r in [*events, *logs]})
            if refused:
                events = [r for r in events if r["request_id"] not in refused]
                logs = [r for r in logs if r["request_id"] not in refused]
                for request_id in sorted(refused):
                    if self.refusal is not None:
                        self.refusal(request_id)
        obs.add_events(conn, events)
        obs.add_logs(conn, logs)
        return {r["request_id"]: r["seq"] for r in events}, {
            r["request_id"]: r["seq"] for r in logs
        }

    def _journaled(self, last: tuple[dict[str, int], dict[str, int]] | None, error: Any) -> None:
        """In the writer thread, once a drain committed: those entries may leave memory."""
        if error is not None or last is None:
            return
        for table, seqs in enumerate(last):
            for request_id, seq in seqs.items():
                feed = self._feed(request_id)
                if feed is not None:
                    stream = feed.logs if table else feed.events
                    stream.journaled = max(stream.journaled, seq)

    # -- reading ------------------------------------------------------------------------
    def _feed(self, request_id: str) -> Feed | None:
        return self.feeds.get(request_id) or self.recent.get(request_id)

    def running(self, request_id: str) -> bool:
        return request_id in self.feeds

    async def snapshot(self, request_id: str, after: int = 0, logs: bool = False) -> list[Entry]:
        """Every entry after ``after`` known now: from memory when it holds them, else from
        the journal and then memory. A request that is not running here ends with its
        ``request_finished`` event (rebuilt from its row if the journal lacks it)."""
        feed = self._feed(request_id)
        memory: list[Entry] = []
        if feed is not None:
            stream = feed.logs if logs else feed.events
            memory = list(stream.items)
            if memory and memory[0].seq <= after + 1:
                return [e for e in memory if e.seq > after]
        stored = await self.store.read(lambda c: self._stored(c, request_id, after, logs))
        last = stored[-1].seq if stored else after
        entries = stored + [e for e in memory if e.seq > last]
        if feed is None and not logs and (not entries or entries[-1].kind != "request_finished"):
            final = await self.store.read(lambda c: j.get_request(c, request_id))
            if final is not None and final["status"] in FINAL:
                entries.append(_final_entry(final, (entries[-1].seq if entries else after) + 1))
        return entries

    @staticmethod
    def _stored(conn: Any, request_id: str, after: int, logs: bool) -> list[Entry]:
        if logs:
            rows = obs.logs_after(conn, request_id, after)
            keys = ("call_id", "function", "attempt", "container", "stream", "level", "message")
            return [Entry(r["seq"], "log", r["created_at"], {k: r[k] for k in keys}) for r in rows]
        rows = obs.events_after(conn, request_id, after)
        return [Entry(r["seq"], r["kind"], r["created_at"], r["data"]) for r in rows]

    async def follow(
        self, request_id: str, after: int = 0, logs: bool = False, keepalive: float = 15.0
    ) -> AsyncIterator[Entry | None]:
        """Entries after ``after``, then live ones as they come, until the request finishes.
        Yields None when ``keepalive`` seconds pass without one."""
        cursor = after
        quiet_since, last_pass = time.monotonic(), False
        while True:
            feed = self._feed(request_id)
            changed = (feed.logs if logs else feed.events).changed() if feed else None
            for entry in await self.snapshot(request_id, cursor, logs):
                cursor, quiet_since = entry.seq, time.monotonic()
                yield entry
                if entry.kind == "request_finished" and feed is None:
                    return
            if feed is None and self.poll_interval is not None and not last_pass:
                # Run by another replica: its entries reach the journal lazily.
                row = await self.store.read(lambda c: j.get_request(c, request_id))
                last_pass = row is None or row["status"] in FINAL
                await asyncio.sleep(self.poll_interval)
                if time.monotonic() - quiet_since >= keepalive:
                    quiet_since = time.monotonic()
                    yield None
                continue
            if feed is None or feed.done or changed is None:
                return
            try:
                async with asyncio.timeout(keepalive):
                    await changed.wait()
            except TimeoutError:
                yield None


def output_fields(
    app: str, request_id: str, output: bytes | None, content_type: str | None
) -> dict[str, Any]:
    """Where a finished request's output is: inline when it is small JSON, and its URL."""
    fields: dict[str, Any] = {
        "output_url": f"/applications/{app}/requests/{request_id}/output",
        "content_type": content_type,
    }
    json_type = (content_type or "application/json").startswith("application/json")
    if output is not None and json_type and len(output) <= INLINE_OUTPUT_LIMIT:
        with contextlib.suppress(ValueError):
            fields["output"] = json.loads(output)
    return fields


def _final_entry(row: dict[str, Any], seq: int) -> Entry:
    """A ``request_finished`` event rebuilt from the request's row (its lazy event was not
    journaled before the server stopped)."""
    error = json.loads(row["error"]) if row["error"] else None
    data: dict[str, Any] = {"status": row["status"], "error": _brief(error)}
    if row["status"] == "succeeded":
        data["output_url"] = f"/applications/{row['app']}/requests/{row['id']}/output"
        data["content_type"] = row["content_type"]
    return Entry(seq, "request_finished", row["finished_at"] or time.time(), data)


def _brief(error: dict[str, Any] | None) -> dict[str, Any] | None:
    if not error:
        return None
    keys = ("reason", "function_name", "message", "error_type")
    return {k: error.get(k) for k in keys}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()
