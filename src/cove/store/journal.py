"""The journal's SQL: plain functions over a Connection, dialect-neutral Core statements.

Writes run inside the store's group-commit transaction; reads on reader connections.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, delete, func, or_, select, update

from cove.store.prepared import Prepared
from cove.store.schema import (
    app_versions,
    applications,
    call_attempts,
    function_calls,
    metrics,
    progress,
    request_replays,
    request_state,
    requests,
)

UNFINISHED = ("pending", "running")


@dataclass
class Payload:
    """Bytes kept in a row (small) or in the blob store (large)."""

    inline: bytes | None = None
    blob: str | None = None


# Hot-path statements are built once with bind parameters: building a statement per call,
# with its values inlined, costs more CPU than executing it.
_call_key = and_(
    function_calls.c.request_id == bindparam("b_rid"),
    function_calls.c.call_id == bindparam("b_cid"),
)
_START_CALL = Prepared(
    update(function_calls)
    .where(_call_key)
    .values(status="running", attempts=bindparam("b_att"), started_at=bindparam("b_now"))
)
_FINISH_CALL = Prepared(
    update(function_calls)
    .where(_call_key)
    .values(
        status=bindparam("b_status"),
        finished_at=bindparam("b_now"),
        attempts=bindparam("b_att"),
        output_inline=bindparam("b_oi"),
        output_blob=bindparam("b_ob"),
        content_type=bindparam("b_ct"),
        error=bindparam("b_err"),
    )
)
_FINISH_REQUEST = Prepared(
    update(requests)
    .where(requests.c.id == bindparam("b_rid"))
    .values(
        status=bindparam("b_status"),
        finished_at=bindparam("b_now"),
        content_type=bindparam("b_ct"),
        error=bindparam("b_err"),
    )
)
_MARK_RUNNING = Prepared(
    update(requests)
    .where(and_(requests.c.id == bindparam("b_rid"), requests.c.status == "pending"))
    .values(status="running")
)
_GET_REQUEST = select(requests).where(requests.c.id == bindparam("b_rid"))
_ROOT_CALL = select(function_calls).where(
    and_(function_calls.c.request_id == bindparam("b_rid"), function_calls.c.call_id == "0")
)
_INSERT_REQUEST = Prepared(requests.insert())
_INSERT_CALL = Prepared(function_calls.insert())
_insert_ignoring: dict[str, Prepared] = {}


def upsertable_insert(conn: Connection, table: Table) -> Any:
    """``table``'s INSERT in the connection's dialect, which has ``on_conflict_do_nothing``
    and ``on_conflict_do_update`` on both PostgreSQL and SQLite."""
    from sqlalchemy.dialects import postgresql, sqlite

    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def _insert_call_ignoring_duplicates(conn: Connection) -> Prepared:
    """INSERT that skips rows whose key exists (a call re-issued after a restart)."""
    dialect = conn.dialect.name
    stmt = _insert_ignoring.get(dialect)
    if stmt is None:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt = Prepared(pg_insert(function_calls).on_conflict_do_nothing())
        else:
            stmt = Prepared(function_calls.insert().prefix_with("OR IGNORE", dialect="sqlite"))
        _insert_ignoring[dialect] = stmt
    return stmt


# -- applications -----------------------------------------------------------------------
def insert_version(
    conn: Connection,
    app: str,
    module: str,
    filename: str,
    code_blob: str,
    manifest: str,
    now: float,
) -> int:
    row = conn.execute(
        select(applications.c.latest_version).where(applications.c.name == app)
    ).first()
    version = (row[0] if row else 0) + 1
    if row:
        conn.execute(
            update(applications)
            .where(applications.c.name == app)
            .values(latest_version=version, updated_at=now)
        )
    else:
        conn.execute(
            applications.insert().values(
                name=app, latest_version=version, created_at=now, updated_at=now
            )
        )
    conn.execute(
        app_versions.insert().values(
            app=app,
            version=version,
            module=module,
            filename=filename,
            code_blob=code_blob,
            manifest=manifest,
            created_at=now,
        )
    )
    return version


def all_versions(conn: Connection) -> list[dict[str, Any]]:
    """Every version of every existing application."""
    rows = conn.execute(
        select(app_versions, applications.c.latest_version).join(
            applications, applications.c.name == app_versions.c.app
        )
    ).mappings()
    return [dict(r) for r in rows]


def delete_application(conn: Connection, app: str) -> bool:
    """Remove an application, its versions and its requests' records."""
    found = conn.execute(delete(applications).where(applications.c.name == app)).rowcount
    conn.execute(delete(app_versions).where(app_versions.c.app == app))
    ids = select(requests.c.id).where(requests.c.app == app).scalar_subquery()
    for table in (function_calls, request_state, progress, metrics, call_attempts, request_replays):
        conn.execute(delete(table).where(table.c.request_id.in_(ids)))
    conn.execute(delete(requests).where(requests.c.app == app))
    return bool(found)


# -- requests ---------------------------------------------------------------------------
def create_request(
    conn: Connection,
    request: dict[str, Any],
    root_call: dict[str, Any],
) -> tuple[str, bool]:
    """Insert a request and its root call. With an idempotency key already used for this
    application, returns the earlier request instead: ``(id, created)``."""
    key = request.get("idempotency_key")
    if key is not None:
        row = conn.execute(
            select(requests.c.id, requests.c.idempotency_hash).where(
                and_(requests.c.app == request["app"], requests.c.idempotency_key == key)
            )
        ).first()
        if row is not None:
            if row[1] != request.get("idempotency_hash"):
                from cove.errors import ConflictError

                raise ConflictError(
                    f"Idempotency-Key {key!r} was already used with a different body",
                    request_id=row[0],
                )
            return str(row[0]), False
    _INSERT_REQUEST.run(conn, request)
    _INSERT_CALL.run(conn, root_call)
    return str(request["id"]), True


def finish_request(
    conn: Connection,
    request_id: str,
    status: str,
    now: float,
    content_type: str | None = None,
    error: dict[str, Any] | None = None,
) -> None:
    _FINISH_REQUEST.run(
        conn,
        {
            "b_rid": request_id,
            "b_status": status,
            "b_now": now,
            "b_ct": content_type,
            "b_err": json.dumps(error) if error else None,
        },
    )


def mark_request_running(conn: Connection, request_id: str) -> None:
    _MARK_RUNNING.run(conn, {"b_rid": request_id})


def get_request(conn: Connection, request_id: str) -> dict[str, Any] | None:
    row = conn.execute(_GET_REQUEST, {"b_rid": request_id}).mappings().first()
    return dict(row) if row else None


def list_requests(
    conn: Connection,
    app: str,
    limit: int,
    before: tuple[float, str] | None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """Newest first; ``before`` is the (created_at, id) of the last row of the previous page;
    ``status``: only requests in that status."""
    query = select(requests).where(requests.c.app == app)
    if status is not None:
        query = query.where(requests.c.status == status)
    if before is not None:
        created, rid = before
        query = query.where(
            or_(
                requests.c.created_at < created,
                and_(requests.c.created_at == created, requests.c.id < rid),
            )
        )
    query = query.order_by(requests.c.created_at.desc(), requests.c.id.desc()).limit(limit)
    return [dict(r) for r in conn.execute(query).mappings()]


def unfinished_requests(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(requests).where(requests.c.status.in_(UNFINISHED)).order_by(requests.c.created_at)
    ).mappings()
    return [dict(r) for r in rows]


def count_requests(conn: Connection, app: str) -> int:
    return int(
        conn.execute(
            select(func.count()).select_from(requests).where(requests.c.app == app)
        ).scalar_one()
    )


# -- calls ------------------------------------------------------------------------------
def insert_calls(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Record new calls; ones already recorded (re-issued after a restart) are kept as is."""
    if rows:
        _insert_call_ignoring_duplicates(conn).run_many(conn, rows)


def start_call(conn: Connection, request_id: str, call_id: str, attempts: int, now: float) -> None:
    _START_CALL.run(conn, {"b_rid": request_id, "b_cid": call_id, "b_att": attempts, "b_now": now})


def finish_call(
    conn: Connection,
    request_id: str,
    call_id: str,
    status: str,
    now: float,
    attempts: int,
    output: Payload | None = None,
    content_type: str | None = None,
    error: dict[str, Any] | None = None,
) -> None:
    _FINISH_CALL.run(
        conn,
        {
            "b_rid": request_id,
            "b_cid": call_id,
            "b_status": status,
            "b_now": now,
            "b_att": attempts,
            "b_oi": output.inline if output else None,
            "b_ob": output.blob if output else None,
            "b_ct": content_type,
            "b_err": json.dumps(error) if error else None,
        },
    )


def calls_of(conn: Connection, request_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(function_calls)
        .where(function_calls.c.request_id == request_id)
        .order_by(function_calls.c.created_at)
    ).mappings()
    return [dict(r) for r in rows]


def root_call(conn: Connection, request_id: str) -> dict[str, Any] | None:
    row = conn.execute(_ROOT_CALL, {"b_rid": request_id}).mappings().first()
    return dict(row) if row else None


# -- state, progress, metrics -----------------------------------------------------------
_UPDATE_STATE = Prepared(
    update(request_state)
    .where(
        and_(
            request_state.c.request_id == bindparam("b_rid"),
            request_state.c.key == bindparam("b_key"),
        )
    )
    .values(
        value_inline=bindparam("b_vi"), value_blob=bindparam("b_vb"), updated_at=bindparam("b_now")
    )
)
_INSERT_STATE = Prepared(request_state.insert())


def set_state(
    conn: Connection, request_id: str, key: str, value: Payload, now: float, new: bool = False
) -> None:
    """Set a state entry; ``new``: the request has no entry of that key yet (it was just
    created), so it is inserted without looking."""
    if not new:
        values = {"b_rid": request_id, "b_key": key, "b_vi": value.inline, "b_vb": value.blob}
        if _UPDATE_STATE.run(conn, {**values, "b_now": now}) > 0:
            return
    _INSERT_STATE.run(
        conn,
        {
            "request_id": request_id,
            "key": key,
            "value_inline": value.inline,
            "value_blob": value.blob,
            "updated_at": now,
        },
    )


def state_of(conn: Connection, request_id: str) -> dict[str, Payload]:
    rows = conn.execute(
        select(request_state.c.key, request_state.c.value_inline, request_state.c.value_blob).where(
            request_state.c.request_id == request_id
        )
    )
    return {r[0]: Payload(r[1], r[2]) for r in rows}


def state_rows(conn: Connection, request_id: str) -> list[dict[str, Any]]:
    """The request's state rows (key, value_inline, value_blob, updated_at), by key."""
    query = (
        select(request_state)
        .where(request_state.c.request_id == request_id)
        .order_by(request_state.c.key)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


_INSERT_PROGRESS = Prepared(progress.insert())
_INSERT_METRIC = Prepared(metrics.insert())


def add_progress(conn: Connection, row: dict[str, Any]) -> None:
    _INSERT_PROGRESS.run(conn, row)


def add_metric(conn: Connection, row: dict[str, Any]) -> None:
    _INSERT_METRIC.run(conn, row)


def progress_of(conn: Connection, request_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(progress).where(progress.c.request_id == request_id).order_by(progress.c.id)
    ).mappings()
    return [dict(r) for r in rows]


def metrics_of(conn: Connection, request_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(metrics).where(metrics.c.request_id == request_id).order_by(metrics.c.id)
    ).mappings()
    return [dict(r) for r in rows]


# -- attempts and replays ---------------------------------------------------------------
_START_ATTEMPT = Prepared(call_attempts.insert())
_END_ATTEMPT = Prepared(
    update(call_attempts)
    .where(
        and_(
            call_attempts.c.request_id == bindparam("b_rid"),
            call_attempts.c.call_id == bindparam("b_cid"),
            call_attempts.c.attempt == bindparam("b_att"),
            call_attempts.c.finished_at.is_(None),
        )
    )
    .values(status=bindparam("b_status"), finished_at=bindparam("b_now"), error=bindparam("b_err"))
)


def start_attempt(
    conn: Connection, request_id: str, call_id: str, attempt: int, container: str, now: float
) -> None:
    _START_ATTEMPT.run(
        conn,
        {
            "request_id": request_id,
            "call_id": call_id,
            "attempt": attempt,
            "container": container,
            "status": "running",
            "started_at": now,
        },
    )


def end_attempt(
    conn: Connection,
    request_id: str,
    call_id: str,
    attempt: int,
    status: str,
    now: float,
    error: dict[str, Any] | None = None,
) -> None:
    _END_ATTEMPT.run(
        conn,
        {
            "b_rid": request_id,
            "b_cid": call_id,
            "b_att": attempt,
            "b_status": status,
            "b_now": now,
            "b_err": json.dumps(error) if error else None,
        },
    )


def attempts_of(conn: Connection, request_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(call_attempts)
        .where(call_attempts.c.request_id == request_id)
        .order_by(call_attempts.c.id)
    ).mappings()
    return [dict(r) for r in rows]


def prepare_replay(conn: Connection, request_id: str, version: int, now: float) -> int:
    """Make a failed or cancelled request runnable again under its id: keep every call
    that succeeded, forget the others, reset the entry call. Returns the replay number."""
    row = conn.execute(
        select(requests.c.status, requests.c.version).where(requests.c.id == request_id)
    ).first()
    if row is None or row[0] not in ("failed", "cancelled"):
        from cove.errors import ConflictError

        status = row[0] if row else "missing"
        raise ConflictError(
            f"request {request_id} is {status}: only failed or cancelled requests replay",
            request_id=request_id,
        )
    conn.execute(
        delete(function_calls).where(
            and_(
                function_calls.c.request_id == request_id,
                function_calls.c.status != "succeeded",
                function_calls.c.call_id != "0",
            )
        )
    )
    conn.execute(
        update(function_calls)
        .where(and_(function_calls.c.request_id == request_id, function_calls.c.call_id == "0"))
        .values(
            status="pending",
            attempts=0,
            output_inline=None,
            output_blob=None,
            content_type=None,
            error=None,
            started_at=None,
            finished_at=None,
        )
    )
    conn.execute(
        update(requests)
        .where(requests.c.id == request_id)
        .values(status="pending", version=version, finished_at=None, error=None, content_type=None)
    )
    previous = conn.execute(
        select(request_replays.c.count).where(request_replays.c.request_id == request_id)
    ).scalar()
    count = int(previous or 0) + 1
    values = {"count": count, "last_at": now, "from_version": int(row[1]), "diverged": None}
    if previous is None:
        conn.execute(request_replays.insert().values(request_id=request_id, **values))
    else:
        conn.execute(
            update(request_replays)
            .where(request_replays.c.request_id == request_id)
            .values(**values)
        )
    return count


def record_divergence(conn: Connection, row: dict[str, Any], diverged: list[str]) -> None:
    """A replay issued another function at a recorded position: the new call replaces it."""
    conn.execute(
        delete(function_calls).where(
            and_(
                function_calls.c.request_id == row["request_id"],
                function_calls.c.call_id == row["call_id"],
            )
        )
    )
    _INSERT_CALL.run(conn, row)
    conn.execute(
        update(request_replays)
        .where(request_replays.c.request_id == row["request_id"])
        .values(diverged=json.dumps(diverged))
    )


def replay_of(conn: Connection, request_id: str) -> dict[str, Any] | None:
    row = (
        conn.execute(select(request_replays).where(request_replays.c.request_id == request_id))
        .mappings()
        .first()
    )
    return dict(row) if row else None
