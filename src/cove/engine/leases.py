"""Several servers on one PostgreSQL database: which replica runs which request.

The replica that accepts a request holds its lease (``request_leases``, written in the same
transaction as the request) and runs all of its calls, so a call is run by one replica by
construction. Every ``lease_seconds / 3`` a replica renews all its leases in one UPDATE,
and claims the expired leases of unfinished requests (``FOR UPDATE SKIP LOCKED``: two
replicas never claim the same one) and resumes those requests from the journal, finished
calls not re-run. ``LISTEN/NOTIFY`` wakes replicas when a request finishes (for clients
waiting on another replica), when leases are released (a replica stopping) and on deploys;
polling is the fallback for every one of them. Times are the database's, so replicas'
clocks need not agree.

Fencing: every journal write that belongs to a request (a call's start, attempts, outputs
and failures, its children, request state, progress, metrics, events and logs, the
request's end) checks, in the transaction that commits it, that this replica still holds
the request's lease: one ``SELECT ... FOR SHARE`` of the lease rows of all the requests a
transaction writes for (:meth:`Leases.refused`), so a takeover, which updates the row,
waits for that transaction, and a transaction after the takeover sees the new owner. A
refused write is dropped (nothing of it is written), counted (``fenced_writes``), and the
replica drops the request and stops its running calls, as when its round finds a lease
lost. On SQLite (one server) none of this runs.

Each replica also keeps a row of ``replicas`` (renewed with its leases, deleted when it
stops), so ``GET /status`` on any replica lists the live ones, idle ones included.

Every replica must use one blob store: before anything else a replica starting checks that
its store is the database's (``claim_blob_store``, with the marker of cove.blobs.identity)
and refuses to start while live replicas use another one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from cove.blobs import BlobStore
from cove.blobs import identity as blob_identity
from cove.engine.deployments import Deployments, Version
from cove.engine.failures import cancelled
from cove.engine.keys import public_name
from cove.errors import BlobMissingError, DatabaseUnavailableError, InternalError, NotFoundError
from cove.store import Store
from cove.store import journal as j
from cove.store.schema import applications, blob_stores, requests

if TYPE_CHECKING:
    from cove.engine.engine import Engine
    from cove.engine.model import RequestRun
    from cove.engine.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

CLAIM_BATCH = 100
#: How often a client waiting on another replica's request reads its row (NOTIFY wakes it
#: sooner).
POLL_SECONDS = 0.5
CHANNELS = ("cove_finished", "cove_leases", "cove_deploy", "cove_reopened")
FINAL = ("succeeded", "failed", "cancelled")
_NOW = "extract(epoch from clock_timestamp())"

_HOLD = text(
    "INSERT INTO request_leases (request_id, owner, expires_at) "
    f"VALUES (:rid, :me, {_NOW} + :ttl) ON CONFLICT (request_id) "
    "DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at"
)
_RENEW = text(f"UPDATE request_leases SET expires_at = {_NOW} + :ttl WHERE owner = :me")
_FORGET_FINISHED = text(
    "DELETE FROM request_leases l USING requests r WHERE r.id = l.request_id "
    f"AND (l.owner = :me OR l.expires_at < {_NOW}) "
    "AND r.status IN ('succeeded', 'failed', 'cancelled')"
)
_HELD = text(
    "SELECT l.request_id FROM request_leases l JOIN requests r ON r.id = l.request_id "
    "WHERE l.owner = :me AND r.status IN ('pending', 'running')"
)
_LOST = text(
    "SELECT l.request_id FROM request_leases l WHERE l.request_id = ANY(:ids) AND l.owner <> :me"
)
_CLAIM = text(
    f"""
    WITH candidates AS (
        SELECT r.id FROM requests r LEFT JOIN request_leases l ON l.request_id = r.id
        WHERE r.status IN ('pending', 'running')
          AND (l.request_id IS NULL OR l.expires_at < {_NOW} OR l.owner = :mine)
        ORDER BY r.created_at
        LIMIT :n
        FOR UPDATE OF r SKIP LOCKED
    )
    INSERT INTO request_leases (request_id, owner, expires_at)
    SELECT id, :me, {_NOW} + :ttl FROM candidates
    ON CONFLICT (request_id) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
    WHERE request_leases.expires_at < {_NOW} OR request_leases.owner = :mine
    RETURNING request_id
    """
)
_RELEASE = text("UPDATE request_leases SET expires_at = 0 WHERE owner = :me")
_JOIN = (
    "INSERT INTO replicas (id, started_at, renewed_at, expires_at) "
    f"SELECT :me, t, t, t + :ttl FROM (SELECT {_NOW} AS t) AS now "
    "ON CONFLICT (id) DO UPDATE SET renewed_at = EXCLUDED.renewed_at, "
    "expires_at = EXCLUDED.expires_at"
)
_ALIVE = text(_JOIN)
_STARTED = text(_JOIN + ", started_at = EXCLUDED.started_at")  # (again) from now on
_FORGET_REPLICAS = text(f"DELETE FROM replicas WHERE expires_at < {_NOW} - 3600")  # long dead
_LEAVE = text("DELETE FROM replicas WHERE id = :me")
_REPLICAS = text(
    f"""
    SELECT r.id, r.started_at, r.renewed_at, count(l.request_id)::integer AS requests
    FROM replicas r LEFT JOIN request_leases l ON l.owner = r.id AND l.expires_at >= {_NOW}
    WHERE r.expires_at >= {_NOW}
    GROUP BY r.id, r.started_at, r.renewed_at
    ORDER BY r.started_at, r.id
    """
)
_OTHERS_ALIVE = text(
    f"SELECT id FROM replicas WHERE expires_at >= {_NOW} AND id <> :me ORDER BY started_at, id"
)
#: The most request ids ``GET /status`` lists (their count is always given).
LISTED_REQUESTS = 100
_LOCK = text("SELECT owner FROM request_leases WHERE request_id = :rid FOR UPDATE")
#: The fence: the owners of the requests a transaction writes for, their rows locked until
#: it commits (a takeover's UPDATE waits for it). In id order, so two writers never deadlock.
_OWNERS = text(
    "SELECT request_id, owner FROM request_leases WHERE request_id = ANY(:ids) "
    "ORDER BY request_id FOR SHARE"
)
#: Of requests without a lease row: those that finished (their lease forgotten). The others
#: are created in the very transaction asking (their row is not there yet).
_ENDED = text(
    "SELECT id FROM requests WHERE id = ANY(:ids) "
    "AND status IN ('succeeded', 'failed', 'cancelled')"
)


class Refused:
    """What a fenced write returns when the fence refused it (nothing was written)."""

    def __repr__(self) -> str:
        return "REFUSED"


REFUSED = Refused()
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


class LeaseLost(Exception):
    """A journal write was refused: another replica holds the request's lease now."""


def default_replica_id(data_dir: str) -> str:
    """Host name and data folder: a server restarted on the same folder is the same replica
    (it resumes its own requests at once), two servers never share a folder."""
    digest = hashlib.sha256(data_dir.encode()).hexdigest()[:12]
    return f"{socket.gethostname()}:{digest}"


def replica_id_of(settings: Settings, data_dir: Path) -> str:
    """``COVE_REPLICA_ID``, else :func:`default_replica_id`."""
    return settings.replica_id or default_replica_id(str(data_dir.resolve()))


SCALING = "docs/scaling.md"


def claim_blob_store(store: Store, blobs: BlobStore, replica_id: str, ttl: float) -> None:
    """At start, on PostgreSQL: check that ``blobs`` is the blob store of the database's
    other replicas (it holds the marker of the store id the database records, see
    cove.blobs.identity), and raise InternalError, saying why, when it is not while
    other replicas are live. The first replica over a database records its store. When the
    store is another but no other replica is live (they all stopped, or died longer than a
    lease ago), this store becomes the database's, with a warning: blobs written to the
    earlier store are missing here, and what needs them fails with ``blob_missing``.

    In the same transaction (which holds the ``blob_stores`` row's lock) the replica joins
    ``replicas``, so of replicas starting at once with different stores, all but the first
    are refused. On SQLite (one server) nothing is checked."""
    if store.writer_engine.dialect.name != "postgresql":
        return
    t = blob_stores
    url = blobs.url

    def claim(conn: Connection) -> tuple[str, dict[str, Any], list[str]]:
        conn.execute(
            pg_insert(t)
            .values(name=blob_identity.ROW, store_id="", url="", replica="", recorded_at=0.0)
            .on_conflict_do_nothing()
        )
        row = dict(
            conn.execute(select(t).where(t.c.name == blob_identity.ROW).with_for_update())
            .mappings()
            .one()
        )
        known = str(row["store_id"])
        if known and blobs.exists(blob_identity.marker_key(known)):
            verdict = "same"
        else:
            others = [str(r[0]) for r in conn.execute(_OTHERS_ALIVE, {"me": replica_id})]
            if known and others:
                return "refused", row, others
            fresh = uuid.uuid4().hex
            blobs.put(blob_identity.marker(fresh))  # durable before the id commits
            conn.execute(
                update(t)
                .where(t.c.name == blob_identity.ROW)
                .values(store_id=fresh, url=url, replica=replica_id, recorded_at=time.time())
            )
            verdict = "adopted" if known else "recorded"
        conn.execute(_STARTED, {"me": replica_id, "ttl": ttl})  # live: others starting see us
        return verdict, row, []

    verdict, row, others = store.write_sync(claim)
    if verdict == "refused":
        raise InternalError(
            f"this replica's blob store {url} is not the one the other replicas on this "
            f"database use ({row['url']}, recorded by replica {row['replica']}; live now: "
            f"{', '.join(others)}): it lacks that store's marker blob "
            f"{blob_identity.marker_key(str(row['store_id']))}. Replicas over one database "
            "must share one blob store, or a request accepted by one fails on another: set "
            "COVE_BLOB_URL to the same s3:// URL (or shared folder) on every replica; see "
            f"{SCALING}",
            store=url,
            database_store=row["url"],
            live_replicas=others,
        )
    if verdict == "adopted":
        log.warning(
            "this replica's blob store %s is not the one recorded in the database (%s, by "
            "replica %s), and no other replica is live: it is the database's blob store from "
            "now on. Blobs written to the other store (code, payloads, files) are missing "
            "here, and what needs them fails with blob_missing. Give every replica the same "
            "COVE_BLOB_URL (see %s)",
            url,
            row["url"],
            row["replica"],
            SCALING,
        )


class Leases:
    """The engine's side of sharing a PostgreSQL database with other replicas."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.enabled = engine.store.writer_engine.dialect.name == "postgresql"
        settings = engine.settings
        self.ttl = settings.lease_seconds
        self.replica_id = replica_id_of(settings, engine.data_dir)
        self._waiting: dict[str, set[asyncio.Event]] = {}  # request -> its waiters
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.takeovers = 0
        # The fence (see the module's docstring): writes refused since the start; and, for
        # the writer thread, the transaction whose requests were checked, with the verdicts.
        self.fenced_writes = 0
        self._fence_tx: object | None = None
        self._checked: dict[str, bool] = {}  # request -> refused, in that transaction
        self._ahead: set[str] = set()  # requests with fenced writes queued: checked together
        if self.enabled:  # events and logs are journal rows of requests too
            engine.events.fence, engine.events.refusal = self.refused, self.refusal
        self.adopted = 0  # requests held here that nothing ran, resumed by a round

    # -- inside journal transactions -----------------------------------------------------
    def hold(self, conn: Connection, request_id: str, reopened: bool = False) -> None:
        """This replica runs the request (in the transaction that records it, or reopens
        it for a replay: then other replicas forget how it ended)."""
        if self.enabled:
            conn.execute(_HOLD, {"rid": request_id, "me": self.replica_id, "ttl": self.ttl})
            if reopened:
                payload = f"{request_id} {self.replica_id}"
                conn.execute(_NOTIFY, {"channel": "cove_reopened", "payload": payload})

    def fence(self, conn: Connection, request_id: str) -> None:
        """Before the write that finishes a request: fail it if another replica took the
        lease (the request is theirs now), and tell waiting replicas once it commits."""
        if not self.enabled:
            return
        owner = conn.execute(_LOCK, {"rid": request_id}).scalar()
        if owner is not None and owner != self.replica_id:
            raise LeaseLost(f"request {request_id} is run by replica {owner} now")
        conn.execute(_NOTIFY, {"channel": "cove_finished", "payload": request_id})

    def finishing(self, conn: Connection, request_id: str) -> None:
        """In a fenced write that finishes a request (see :meth:`guard`): tell waiting
        replicas once it commits."""
        if self.enabled:
            conn.execute(_NOTIFY, {"channel": "cove_finished", "payload": request_id})

    # -- the fence ------------------------------------------------------------------------
    def guard(self, request_id: str, op: Callable[[Connection], T]) -> Callable[[Connection], Any]:
        """``op``, a journal write of ``request_id``'s, fenced: in its transaction it runs
        only if this replica still holds the request's lease, else it writes nothing and
        returns REFUSED (counted, and the request dropped here: :meth:`refusal`). On
        SQLite: ``op`` itself."""
        if not self.enabled:
            return op
        self._ahead.add(request_id)

        def fenced(conn: Connection) -> Any:
            if request_id in self.refused(conn, {request_id}):
                self.refusal(request_id)
                return REFUSED
            return op(conn)

        return fenced

    def refused(self, conn: Connection, request_ids: set[str]) -> set[str]:
        """In the writer's transaction: those of ``request_ids`` this replica may not write
        for. A request is asked about once per transaction, together with every request
        that has fenced writes queued (one statement for a whole group commit); its lease
        row stays locked (``FOR SHARE``) until the commit. Refused: another replica owns
        the lease, or nobody does (its lease forgotten) and the request finished, not
        here. Allowed: this replica owns it (expired or not: a takeover would have changed
        the owner), it finished here (late logs of its containers), or no row exists yet
        and no finished request either (one created in this transaction)."""
        if not self.enabled or not request_ids:
            return set()
        tx = conn.get_transaction()
        if tx is not self._fence_tx:
            self._fence_tx, self._checked = tx, {}
        unknown = {r for r in request_ids if r not in self._checked}
        if unknown:
            ahead, self._ahead = self._ahead, set()
            ask = sorted(unknown | {r for r in ahead if r not in self._checked})
            owners = {str(r[0]): str(r[1]) for r in conn.execute(_OWNERS, {"ids": ask})}
            bad = {r for r, owner in owners.items() if owner != self.replica_id}
            missing = [r for r in ask if r not in owners]
            if missing:  # a finished request: refused, unless it finished here
                ended = [str(r[0]) for r in conn.execute(_ENDED, {"ids": missing})]
                bad.update(r for r in ended if r not in self.engine.recent)
            self._checked.update((r, r in bad) for r in ask)
        return {r for r in request_ids if self._checked[r]}

    def refusal(self, request_id: str, writes: int = 1) -> None:
        """In the writer's transaction: ``writes`` of the request were refused by the fence
        (dropped). Count them, and have the loop stop driving the request here."""
        self.fenced_writes += writes  # (only the writer thread adds)
        loop = self.engine._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._refused_on_loop, request_id)

    def _refused_on_loop(self, request_id: str) -> None:
        run = self.engine.live.get(request_id)
        if run is not None:
            log.warning("request %s: a journal write was refused by the lease fence", request_id)
            self.forfeit(run)

    # -- lifecycle -----------------------------------------------------------------------
    async def recover(self) -> None:
        """At start: resume the unfinished requests no live replica holds (and this
        replica's own, from before a restart)."""

        params = {"me": self.replica_id, "ttl": self.ttl}
        await self.engine.store.write(lambda c: c.execute(_STARTED, params))
        resumed = await self._resume(await self._claim(startup=True))
        if resumed:
            log.info("resumed %d unfinished request(s)", resumed)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.engine.events.poll_interval = POLL_SECONDS
        self._tasks = [loop.create_task(self._keep()), loop.create_task(self._listen())]

    async def stop(self) -> None:
        """Give up this replica's leases so other replicas take its requests over now."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        with contextlib.suppress(Exception):

            def release(conn: Connection) -> None:
                conn.execute(_RELEASE, {"me": self.replica_id})
                conn.execute(_LEAVE, {"me": self.replica_id})
                conn.execute(_NOTIFY, {"channel": "cove_leases", "payload": self.replica_id})

            await self.engine.store.write(release)

    async def announce_deploy(self) -> None:
        if self.enabled:
            payload = {"channel": "cove_deploy", "payload": self.replica_id}
            await self.engine.store.write(lambda c: c.execute(_NOTIFY, payload))

    # -- the periodic round --------------------------------------------------------------
    async def _keep(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.ttl / 3):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.round()
            except DatabaseUnavailableError as exc:  # its writes wait; a read did not
                log.warning("lease round: %s (retried)", exc.message)
            except Exception:
                log.exception("lease round failed (retried)")

    async def round(self) -> None:
        """Renew this replica's leases, drop requests whose lease it lost, take over
        requests whose lease expired, and learn of deploys made on other replicas."""
        live = list(self.engine.live)

        def renew(conn: Connection) -> tuple[list[str], list[str]]:
            conn.execute(_RENEW, {"me": self.replica_id, "ttl": self.ttl})
            conn.execute(_ALIVE, {"me": self.replica_id, "ttl": self.ttl})
            conn.execute(_FORGET_FINISHED, {"me": self.replica_id})
            conn.execute(_FORGET_REPLICAS)
            held = [r[0] for r in conn.execute(_HELD, {"me": self.replica_id})]
            if not live:
                return [], held
            rows = conn.execute(_LOST, {"ids": live, "me": self.replica_id})
            return [r[0] for r in rows], held

        # The write waits while the database is unreachable (the store retries it): the
        # leases are renewed as soon as it is back, or found lost then and dropped.
        lost, held = await self.engine.store.write(renew)
        for request_id in lost:
            run = self.engine.live.get(request_id)
            if run is not None:
                self.forfeit(run)
        await self.refresh_deployments()
        if not self.engine.accepting:  # stopping: the requests are left to the others
            return
        # Unfinished requests this replica holds that nothing here runs (a claim whose
        # answer was lost with the connection, a resume that failed on a read): run them,
        # or their lease, renewed here, would keep every other replica from them.
        engine = self.engine
        adrift = [r for r in held if r not in engine.live and r not in engine.driving]
        if adrift:
            log.warning("resuming %d request(s) this replica holds but did not run", len(adrift))
            self.adopted += await self._resume(adrift)
        claimed = await self._claim(startup=False)
        self.takeovers += await self._resume(claimed)

    async def _claim(self, startup: bool) -> list[str]:
        params = {
            "me": self.replica_id,
            # Only at start are this replica's own leases up for grabs (a restart).
            "mine": self.replica_id if startup else "",
            "ttl": self.ttl,
            "n": 10**9 if startup else CLAIM_BATCH,
        }
        rows = await self.engine.store.write(lambda c: list(c.execute(_CLAIM, params)))
        return [r[0] for r in rows if r[0] not in self.engine.live]

    async def _resume(self, ids: list[str]) -> int:
        if not ids:
            return 0
        engine = self.engine

        def read(conn: Connection) -> list[dict[str, Any]]:
            query = select(requests).where(requests.c.id.in_(ids)).order_by(requests.c.created_at)
            return [dict(r) for r in conn.execute(query).mappings()]

        rows = await engine.store.read(read)
        if any((r["app"], r["version"]) not in engine.deployments.versions for r in rows):
            await self.refresh_deployments()
        for row in rows:
            if row["id"] not in engine.live and row["status"] not in FINAL:
                await engine.resume_row(row)
        return len(rows)

    def forfeit(self, run: RequestRun) -> None:
        """Another replica holds this request now: drop it here without writing anything
        more of it, and stop its running calls (their containers' other calls retry)."""
        engine = self.engine
        if engine.live.pop(run.id, None) is None:
            return
        log.warning("request %s: its lease went to another replica; stopped here", run.id)
        run.status = "cancelled"  # final here: nothing more of it is journaled by us
        run.mark_done()
        engine.events.feeds.pop(run.id, None)
        if not engine.live:
            engine._drained.set()
        for call in run.calls.values():
            if call.finished:
                continue
            for w in call.waiters:
                if w.slot.alive:
                    w.slot.container.send(("result", w.token, False, cancelled("cancelled")))
            call.waiters.clear()
            if call.slot is not None and call.slot.alive:
                call.slot.alive, call.slot.stopped_by_server = False, True
                asyncio.get_running_loop().create_task(call.slot.container.kill())

    # -- GET /status ------------------------------------------------------------------------
    async def describe(self) -> dict[str, Any]:
        """This replica as ``GET /status`` shows it: its id, the live replicas over the
        database (on SQLite, only this one), the requests it runs, and how many requests
        it took over from other replicas since it started, and how many of its journal
        writes the lease fence refused (``fenced_writes``)."""
        owned = sorted(self.engine.live)
        me = {"id": self.replica_id, "started_at": None, "renewed_at": None}
        replicas = [{**me, "requests": len(owned)}]
        if self.enabled:

            def read(conn: Connection) -> list[dict[str, Any]]:
                return [dict(r) for r in conn.execute(_REPLICAS).mappings()]

            replicas = await self.engine.store.read(read)
        return {
            "id": self.replica_id,
            "shared": self.enabled,  # leases active: other replicas may share the database
            "lease_seconds": self.ttl if self.enabled else None,
            "replicas": replicas,
            "owned_requests": {"count": len(owned), "ids": owned[:LISTED_REQUESTS]},
            "takeovers": self.takeovers,
            "fenced_writes": self.fenced_writes,
        }

    # -- requests run by other replicas --------------------------------------------------
    async def wait_remote(self, request_id: str, timeout: float, stopping: asyncio.Event) -> None:
        """Wait until a request another replica runs finishes (NOTIFY, else polling)."""
        if not self.enabled:
            return
        deadline = time.monotonic() + timeout
        event = asyncio.Event()
        self._waiting.setdefault(request_id, set()).add(event)
        try:
            while not stopping.is_set():
                row = await self.engine.store.read(lambda c: j.get_request(c, request_id))
                left = deadline - time.monotonic()
                if row is None or row["status"] in FINAL or left <= 0:
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(left, POLL_SECONDS)):
                        await event.wait()
                event.clear()
        finally:
            waiters = self._waiting.get(request_id, set())
            waiters.discard(event)
            if not waiters:
                self._waiting.pop(request_id, None)

    async def cancel_remote(self, request_id: str, error: dict[str, Any]) -> bool:
        """Cancel a request another replica runs: take its lease (its runner's finishing
        write then fails, and it stops the request's calls) and record it cancelled."""
        if not self.enabled:
            return False

        def write(conn: Connection) -> bool:
            conn.execute(_LOCK, {"rid": request_id})  # lease first, as fence() locks
            status = conn.execute(
                select(requests.c.status).where(requests.c.id == request_id).with_for_update()
            ).scalar()
            if status is None or status in FINAL:
                return False
            conn.execute(_HOLD, {"rid": request_id, "me": self.replica_id, "ttl": self.ttl})
            j.finish_request(conn, request_id, "cancelled", time.time(), error=error)
            conn.execute(_NOTIFY, {"channel": "cove_finished", "payload": request_id})
            return True

        return await self.engine.store.write(write)

    # -- deploys made on other replicas --------------------------------------------------
    async def refresh_deployments(self) -> None:
        deployments = self.engine.deployments
        if isinstance(deployments, SharedDeployments):
            await self.engine.adopt_versions(deployments.refresh())

    # -- LISTEN ---------------------------------------------------------------------------
    async def _listen(self) -> None:
        """Wake-ups from other replicas; when the connection fails, polling carries on."""
        import psycopg

        url = self.engine.settings.database().replace("+psycopg", "", 1)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                    for channel in CHANNELS:
                        await conn.execute(f"LISTEN {channel}")
                    self._wake.set()  # catch up on what happened while not listening
                    async for note in conn.notifies():
                        self._heard(note.channel, note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("LISTEN connection failed (%s); polling until it is back", exc)
            await asyncio.sleep(1.0)

    def _heard(self, channel: str, payload: str) -> None:
        if channel == "cove_finished":
            for event in self._waiting.get(payload, ()):
                event.set()
            if payload in self.engine.live:
                self._wake.set()  # finished by another replica (cancelled): lost the lease
        elif channel == "cove_reopened":  # replayed elsewhere: what is remembered is stale
            request_id, _, by = payload.partition(" ")
            if by != self.replica_id:
                self.engine.recent.discard(request_id)
                self.engine.events.forget(request_id)
        elif payload != self.replica_id:
            self._wake.set()  # leases released, or a deploy: a round now


def _latest_versions(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(applications.c.name, applications.c.latest_version))
    return {str(r[0]): int(r[1]) for r in rows}


class SharedDeployments(Deployments):
    """Deployments that other replicas also make: an application or version not known
    here is looked up in the database before it is called missing. A version whose code
    blob this replica's store lacks is noted, not fatal: asking for it raises
    BlobMissingError (``blob_missing``), and the other versions carry on."""

    def __init__(self, store: Store, blobs: BlobStore, data_dir: Path) -> None:
        super().__init__(store, blobs, data_dir)
        self.without_code: dict[tuple[str, int], dict[str, Any]] = {}  # -> its row

    async def load(self) -> None:
        rows = await self.store.read(j.all_versions)
        for row in rows:
            self._learn(row)
            self.latest[row["app"]] = row["latest_version"]

    def _learn(self, row: dict[str, Any]) -> Version | None:
        """Remember a version, or note it without code when its code blob is missing."""
        try:
            return self._remember(row)
        except BlobMissingError as exc:
            log.warning("%s version %s: %s", public_name(row["app"]), row["version"], exc)
            self.without_code[(row["app"], row["version"])] = row
            return None

    def apps(self) -> list[Version]:
        """The latest versions (those without code left out: asking for one says why)."""
        latest = sorted(self.latest.items())
        return [self.versions[key] for key in latest if key in self.versions]

    def get(self, app: str, version: int | None = None) -> Version:
        try:
            return super().get(app, version)
        except NotFoundError:
            self.refresh()
            number = version if version is not None else self.latest.get(app)
            row = self.without_code.get((app, number)) if number is not None else None
            if row is not None:
                found = self._remember(row)  # BlobMissingError, unless it is back
                del self.without_code[(app, found.version)]
                return found
            return super().get(app, version)

    def refresh(self) -> list[Version]:
        """Bring the cache up to the database's applications (one small read, synchronous
        so no deploy of this replica can slip in between); returns the versions new here."""
        latest = self.store.read_sync(_latest_versions)
        fresh: list[Version] = []
        if any(self.latest.get(app) != number for app, number in latest.items()):
            for row in self.store.read_sync(j.all_versions):
                key = (row["app"], row["version"])
                if key not in self.versions and key not in self.without_code:
                    learnt = self._learn(row)
                    if learnt is not None:
                        fresh.append(learnt)
            for app, number in latest.items():
                self.latest[app] = max(number, self.latest.get(app, 0))
        for app in [a for a in self.latest if a not in latest]:  # deleted elsewhere
            self.latest.pop(app, None)
            for key in [k for k in [*self.versions, *self.without_code] if k[0] == app]:
                self.versions.pop(key, None)
                self.without_code.pop(key, None)
        return fresh
