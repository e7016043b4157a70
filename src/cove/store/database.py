"""The store: one writer thread with group commit, and readers off the event loop.

SQLite allows one writer at a time and its busy handler is not fair, so every write goes
through a single thread that drains a queue and commits everything it took in one
transaction (group commit): one fsync serves a whole scheduler tick of journal records.
Callers on the event loop get their result after the commit, so nothing is acknowledged
before it is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event

from cove.errors import storage_full
from cove.store.migrations import migrate

log = logging.getLogger(__name__)
T = TypeVar("T")
Op = Callable[[Connection], Any]
Done = Callable[[Any, BaseException | None], None]
_BATCH_LIMIT = 2000
_TICK = object()


# Writes that need no acknowledgement (a call started, a progress update) wait at most this
# long for a durable write to share its commit with.
LAZY_FLUSH_SECONDS = 0.05


@dataclass
class _Item:
    op: Op
    done: Done | None
    lazy: bool = False
    on_loop: Done | None = None
    seq: int = 0


class Store:
    """Serialized, group-committed writes and concurrent reads over one database."""

    def __init__(self, writer: Engine, reader: Engine) -> None:
        self.writer_engine = writer
        self.reader_engine = reader
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cove-read")
        self._thread = threading.Thread(target=self._run, name="cove-writer", daemon=True)
        self._conn: Connection | None = None  # the writer thread's own connection
        self._lazy: list[_Item] = []
        self._lazy_since = 0.0
        self._lazy_lock = threading.Lock()
        self._seq = itertools.count()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.commits = 0
        #: When a write last failed for a full disk (None: not since a check found room).
        self.full_since: float | None = None
        self._thread.start()

    # -- writing ------------------------------------------------------------------------
    def submit(
        self,
        op: Op,
        done: Done | None = None,
        lazy: bool = False,
        on_loop: Done | None = None,
    ) -> None:
        """Queue a write. After its commit, ``done(result, error)`` runs in the writer thread
        and ``on_loop(result, error)`` on the bound event loop (one wake-up per batch).

        A ``lazy`` write (nobody waits for it) does not even wake the writer: it is committed
        with the next other write, or within about ``LAZY_FLUSH_SECONDS``.
        """
        if on_loop is not None and self.loop is None:
            raise RuntimeError("Store.bind_loop() must be called before on_loop callbacks")
        # Writes commit in the order they were submitted, lazy or not.
        item = _Item(op, done, lazy, on_loop, next(self._seq))
        if lazy:
            with self._lazy_lock:
                if not self._lazy:
                    self._lazy_since = time.monotonic()
                self._lazy.append(item)
            return
        self._queue.put(item)

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop that ``on_loop`` callbacks run on."""
        self.loop = loop

    def write_future(self, op: Callable[[Connection], T], lazy: bool = False) -> asyncio.Future[T]:
        """Queue ``op`` now (its place in the commit order is taken at once); the future
        resolves once it is committed. A ``lazy`` one rides with the next other write (see
        ``submit``)."""
        loop = asyncio.get_running_loop()
        if self.loop is None:
            self.loop = loop
        future: asyncio.Future[T] = loop.create_future()

        def done(result: Any, error: BaseException | None) -> None:
            _settle(future, result, error)

        if self.loop is loop:
            self.submit(op, on_loop=done, lazy=lazy)
        else:

            def wake(result: Any, error: BaseException | None) -> None:
                loop.call_soon_threadsafe(done, result, error)

            self.submit(op, wake, lazy=lazy)
        return future

    async def write(self, op: Callable[[Connection], T]) -> T:
        """Run ``op`` in the next group commit and return its result once committed."""
        return await self.write_future(op)

    def write_sync(self, op: Callable[[Connection], T]) -> T:
        """Like :meth:`write`, for code that is not on the event loop."""
        box: list[Any] = []
        ready = threading.Event()

        def done(result: Any, error: BaseException | None) -> None:
            box.extend([result, error])
            ready.set()

        self.submit(op, done)
        ready.wait()
        if box[1] is not None:
            raise box[1]
        result: T = box[0]
        return result

    def _run(self) -> None:
        while True:
            first: _Item | object | None
            try:
                first = self._queue.get(timeout=LAZY_FLUSH_SECONDS)
            except queue.Empty:
                first = _TICK  # time to look at the lazy writes
            stop = first is None
            items = [first] if isinstance(first, _Item) else []
            while not stop and len(items) < _BATCH_LIMIT:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                else:
                    items.append(item)
            batch = self._take_lazy(force=bool(items) or stop) + items
            batch.sort(key=lambda i: i.seq)
            if batch:
                self._commit(batch)
            if stop:
                return

    def _take_lazy(self, force: bool) -> list[_Item]:
        """The lazy writes to commit now: all of them with another write, else old ones."""
        with self._lazy_lock:
            if not self._lazy:
                return []
            if not force and time.monotonic() - self._lazy_since < LAZY_FLUSH_SECONDS:
                return []
            taken, self._lazy = self._lazy, []
            return taken

    def _commit(self, batch: list[_Item]) -> None:
        try:
            if self._conn is None:
                self._conn = self.writer_engine.connect()
            with self._conn.begin():
                results = [item.op(self._conn) for item in batch]
            self.commits += 1
        except Exception:
            self._reset_connection()
            # One bad operation must not sink the others: retry each in its own transaction.
            if len(batch) > 1:
                for item in batch:
                    self._commit([item])
                return
            error: BaseException = _current_error()
            full = storage_full(error)
            if full is not None:  # a full disk: the waiter hears storage_full (HTTP 507)
                self.full_since = self.full_since or time.time()
                log.warning("store write failed: %s", full.message)
                error = full
            else:
                log.exception("store write failed")
            self._notify([(batch[0], None, error)])
            return
        self._notify([(item, result, None) for item, result in zip(batch, results, strict=True)])

    def _reset_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _notify(self, outcomes: list[tuple[_Item, Any, BaseException | None]]) -> None:
        on_loop = []
        for item, result, error in outcomes:
            if item.done is not None:
                try:
                    item.done(result, error)
                except Exception:
                    log.exception("store completion callback failed")
            if item.on_loop is not None:
                on_loop.append((item.on_loop, result, error))
        if on_loop and self.loop is not None:
            # One wake-up of the event loop for the whole batch.
            self.loop.call_soon_threadsafe(_run_callbacks, on_loop)

    # -- reading ------------------------------------------------------------------------
    async def read(self, op: Callable[[Connection], T]) -> T:
        """Run a read-only ``op`` on a reader connection, off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self.read_sync, op)

    def read_sync(self, op: Callable[[Connection], T]) -> T:
        with self.reader_engine.connect() as conn:
            return op(conn)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)
        self._reset_connection()
        self._readers.shutdown(wait=False)
        self.writer_engine.dispose()
        self.reader_engine.dispose()


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _run_callbacks(callbacks: list[tuple[Done, Any, BaseException | None]]) -> None:
    for callback, result, error in callbacks:
        try:
            callback(result, error)
        except Exception:
            log.exception("store completion callback failed")


def _current_error() -> BaseException:
    import sys

    err = sys.exc_info()[1]
    return err if err is not None else RuntimeError("store write failed")


def _sqlite_engine(url: str, synchronous: str, immediate: bool) -> Engine:
    engine = create_engine(url, pool_size=1 if immediate else 4, max_overflow=0 if immediate else 8)

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        # The writer takes the lock up front so it never fails to upgrade a read lock.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def open_store(url: str, sqlite_synchronous: str = "FULL") -> Store:
    """Open (and migrate) the database at ``url``: ``sqlite:///path`` or a PostgreSQL URL."""
    if url.startswith("sqlite"):
        if sqlite_synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"sqlite synchronous must be OFF, NORMAL, FULL or EXTRA: {url}")
        writer = _sqlite_engine(url, sqlite_synchronous.upper(), immediate=True)
        reader = _sqlite_engine(url, sqlite_synchronous.upper(), immediate=False)
    elif url.startswith(("postgresql", "postgres")):
        url = postgres_url(url)
        writer = create_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=True)
        reader = create_engine(url, pool_size=4, max_overflow=4, pool_pre_ping=True)
    else:
        raise ValueError(f"unsupported database URL (use sqlite:/// or postgresql://): {url}")
    with writer.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Replicas starting together: one migrates, the others wait and find it done.
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7405733)")
        migrate(conn)
    return Store(writer, reader)


def postgres_url(url: str) -> str:
    """``postgresql://...`` with the psycopg 3 driver named, as SQLAlchemy wants it."""
    scheme, sep, rest = url.partition("://")
    if scheme in ("postgres", "postgresql"):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise ValueError(
                "a PostgreSQL database needs the psycopg driver: pip install 'cove[postgres]'"
            ) from None
        return f"postgresql+psycopg{sep}{rest}"
    return url
