"""The store: one writer thread with group commit, and readers off the event loop.

SQLite allows one writer at a time and its busy handler is not fair, so every write goes
through a single thread that drains a queue and commits everything it took in one
transaction (group commit): one fsync serves a whole scheduler tick of journal records.
Callers on the event loop get their result after the commit, so nothing is acknowledged
before it is durable.

On PostgreSQL the database can go away (a restart, a failover, a network cut). A batch
whose transaction meets a lost connection is neither acknowledged nor dropped: the writer
reconnects and runs it again, as often as it takes. When the connection broke during the
COMMIT itself, the transaction may or may not have landed; its id (``txid_current()``, read
as the batch begins) tells which after reconnecting (``txid_status``), so no batch is applied
twice and none is lost. While the database is unreachable, :meth:`Store.unavailable` says so
(new requests are refused with ``database_unavailable`` instead of queueing without end),
a waiting write that has not reached the database can be withdrawn, and reads raise
:class:`cove.errors.DatabaseUnavailableError`. SQLite is not affected.
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
from sqlalchemy import exc as sa_exc

from cove.errors import DatabaseUnavailableError, storage_full
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
#: While the database is unreachable, the writer tries again after this long, doubling up to
#: RECONNECT_MAX_SECONDS.
RECONNECT_SECONDS = 0.05
RECONNECT_MAX_SECONDS = 1.0
#: What ``Retry-After`` says to a client refused while the database is unreachable.
RETRY_AFTER_SECONDS = 2


@dataclass
class _Item:
    op: Op
    done: Done | None
    lazy: bool = False
    on_loop: Done | None = None
    seq: int = 0
    withdrawn: bool = False  # given up by its caller before it reached the database
    trying: bool = False  # in a transaction now (or one whose outcome is not known yet)


class _Down(Exception):
    """The database connection was lost. ``xid``: the id of a transaction whose COMMIT
    met the loss, so it may have landed (None: it surely did not)."""

    def __init__(
        self, cause: BaseException, xid: int | None = None, results: list[Any] | None = None
    ) -> None:
        super().__init__(_first_line(cause))
        self.xid = xid
        self.results = results  # the batch's results, when its COMMIT met the loss


def connection_lost(exc: BaseException) -> bool:
    """Whether a PostgreSQL error means the server cannot be reached (down, restarting,
    the connection cut, shutting down, or a transaction to try again), not a bad statement."""
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    try:
        import psycopg
    except ImportError:  # pragma: no cover - PostgreSQL needs it
        return False
    if not isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        return False
    state = getattr(exc, "sqlstate", None)
    # No SQLSTATE: the client's side (refused, reset, closed); 08: connection exceptions;
    # 57P: admin/crash shutdown, cannot connect now; 40: serialization failure, deadlock.
    return state is None or state.startswith(("08", "57P", "40"))


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
        self._retrying = writer.dialect.name == "postgresql"  # see the module's docstring
        self._attempt_lock = threading.Lock()
        self._down_since: float | None = None  # when the writer lost the database
        self._closing = False
        self.reconnects = 0  # times the writer got the database back after losing it
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
        self._submit(op, done, lazy, on_loop)

    def _submit(self, op: Op, done: Done | None, lazy: bool, on_loop: Done | None) -> _Item:
        if on_loop is not None and self.loop is None:
            raise RuntimeError("Store.bind_loop() must be called before on_loop callbacks")
        # Writes commit in the order they were submitted, lazy or not.
        item = _Item(op, done, lazy, on_loop, next(self._seq))
        if lazy:
            with self._lazy_lock:
                if not self._lazy:
                    self._lazy_since = time.monotonic()
                self._lazy.append(item)
            return item
        self._queue.put(item)
        return item

    def unavailable(self) -> bool:
        """Whether the writer has lost the database and not got it back yet (PostgreSQL)."""
        return self._down_since is not None

    def withdraw(self, handle: object) -> bool:
        """Give up a write of :meth:`write_withdrawable` that has not reached the database
        (it waits for the database to come back): it will never commit, and its callbacks
        never run. False when it is committed, or in a transaction whose outcome is not
        known yet: then it resolves as usual."""
        if not isinstance(handle, _Item):
            raise TypeError("not a write of this store")
        with self._attempt_lock:
            if handle.trying:
                return False
            handle.withdrawn = True
            return True

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop that ``on_loop`` callbacks run on."""
        self.loop = loop

    def write_future(self, op: Callable[[Connection], T], lazy: bool = False) -> asyncio.Future[T]:
        """Queue ``op`` now (its place in the commit order is taken at once); the future
        resolves once it is committed. A ``lazy`` one rides with the next other write (see
        ``submit``)."""
        return self.write_withdrawable(op, lazy)[0]

    def write_withdrawable(
        self, op: Callable[[Connection], T], lazy: bool = False
    ) -> tuple[asyncio.Future[T], object]:
        """:meth:`write_future`, and a handle for :meth:`withdraw`."""
        loop = asyncio.get_running_loop()
        if self.loop is None:
            self.loop = loop
        future: asyncio.Future[T] = loop.create_future()

        def done(result: Any, error: BaseException | None) -> None:
            _settle(future, result, error)

        if self.loop is loop:
            item = self._submit(op, None, lazy, done)
        else:

            def wake(result: Any, error: BaseException | None) -> None:
                loop.call_soon_threadsafe(done, result, error)

            item = self._submit(op, wake, lazy, None)
        return future, item

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
        # Each round in a call of its own: nothing of a committed batch stays referenced
        # (by a local of this loop) while the writer waits for the next write.
        while not self._round(self._next()):
            pass

    def _next(self) -> _Item | object | None:
        try:
            return self._queue.get(timeout=LAZY_FLUSH_SECONDS)
        except queue.Empty:
            return _TICK  # time to look at the lazy writes

    def _round(self, first: _Item | object | None) -> bool:
        """Commit ``first`` with whatever else is queued (and the lazy writes that are
        due); True once the store closes."""
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
        return stop

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
        if self._retrying:
            self._commit_retrying(batch)
            return
        try:
            results = self._transaction(batch)
        except Exception:
            self._reset_connection()
            self._split(batch)
            return
        self._notify([(item, result, None) for item, result in zip(batch, results, strict=True)])

    def _transaction(self, batch: list[_Item]) -> list[Any]:
        if self._conn is None:
            self._conn = self.writer_engine.connect()
        with self._conn.begin():
            results = [item.op(self._conn) for item in batch]
        self.commits += 1
        return results

    def _split(self, batch: list[_Item]) -> None:
        """After a failed transaction: one bad operation must not sink the others, so each
        is tried again in its own transaction."""
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

    # -- PostgreSQL: through lost connections ----------------------------------------------
    def _commit_retrying(self, batch: list[_Item]) -> None:
        """Commit ``batch`` however often the connection is lost on the way (see the
        module's docstring); give up only when the store closes."""
        pause = RECONNECT_SECONDS
        doubt: tuple[int, list[Any]] | None = None  # a COMMIT that met the loss
        while True:
            if doubt is None:
                with self._attempt_lock:
                    batch = [item for item in batch if not item.withdrawn]
                    for item in batch:
                        item.trying = True
                if not batch:
                    return
            try:
                if doubt is not None:
                    xid, results = doubt
                    landed = self._landed(xid)
                    doubt = None
                    if not landed:
                        continue  # it did not commit: run the batch again
                else:
                    results = self._transaction_with_id(batch)
            except _Down as down:
                self._reset_connection()
                if down.results is not None:
                    doubt = (down.xid or 0, down.results)
                elif doubt is None:
                    with self._attempt_lock:
                        for item in batch:
                            item.trying = False  # surely not committed: withdrawable
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    log.warning("the database is unreachable (%s): writes wait for it", down)
                if self._closing:
                    error = DatabaseUnavailableError(
                        "the server stopped while the database was unreachable",
                        retry_after=RETRY_AFTER_SECONDS,
                    )
                    self._notify([(item, None, error) for item in batch])
                    return
                time.sleep(pause)
                pause = min(pause * 2, RECONNECT_MAX_SECONDS)
                continue
            except Exception:
                self._reset_connection()
                self._back()
                self._split(batch)
                return
            self._back()
            self._notify([(item, r, None) for item, r in zip(batch, results, strict=True)])
            return

    def _back(self) -> None:
        if self._down_since is not None:
            log.warning(
                "the database is reachable again after %.1f s",
                time.monotonic() - self._down_since,
            )
            self._down_since = None
            self.reconnects += 1

    def _transaction_with_id(self, batch: list[_Item]) -> list[Any]:
        """The batch in one transaction; raises _Down when the connection is lost (with the
        transaction's id when that happened during its COMMIT)."""
        try:
            if self._conn is None:
                self._conn = self.writer_engine.connect()
            conn = self._conn
            tx = conn.begin()
        except Exception as exc:
            if connection_lost(exc):
                raise _Down(exc) from exc
            raise
        try:
            xid = int(conn.exec_driver_sql("SELECT txid_current()").scalar_one())
            results = [item.op(conn) for item in batch]
        except Exception as exc:
            with contextlib.suppress(Exception):
                tx.rollback()
            if connection_lost(exc):
                raise _Down(exc) from exc
            raise
        try:
            tx.commit()
        except Exception as exc:
            if connection_lost(exc):
                raise _Down(exc, xid, results) from exc
            raise
        self.commits += 1
        return results

    def _landed(self, xid: int) -> bool:
        """Whether the transaction ``xid``, whose COMMIT met a lost connection, committed."""
        try:
            if self._conn is None:
                self._conn = self.writer_engine.connect()
            with self._conn.begin():
                status = self._conn.exec_driver_sql(f"SELECT txid_status({int(xid)})").scalar()
        except Exception as exc:
            if connection_lost(exc):
                raise _Down(exc, xid) from exc
            raise
        return status == "committed"

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
        if not self._retrying:
            with self.reader_engine.connect() as conn:
                return op(conn)
        try:
            with self.reader_engine.connect() as conn:
                return op(conn)
        except Exception as exc:
            if connection_lost(exc):
                raise DatabaseUnavailableError(
                    f"the database is unreachable: {_first_line(exc)}",
                    retry_after=RETRY_AFTER_SECONDS,
                ) from exc
            raise

    def close(self) -> None:
        self._closing = True
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


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        # The writer takes the lock up front so it never fails to upgrade a read lock. On
        # the driver's connection: SQLAlchemy's own execute costs more than the BEGIN.
        conn.connection.driver_connection.execute(begin)  # type: ignore[union-attr]

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
