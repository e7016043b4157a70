"""The SQL of what a request shows while it runs: its event stream and its calls' logs.

Both are append-only per request, numbered by ``seq`` (1, 2, ...), which is also the
``id`` of Server-Sent Events, so ``Last-Event-ID`` resumes with a plain ``seq >`` query.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, and_, func, select

from cove.store.prepared import Prepared
from cove.store.schema import call_logs, metrics, request_events

_INSERT_EVENTS = Prepared(request_events.insert())
_INSERT_LOGS = Prepared(call_logs.insert())


def add_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Rows: ``request_id, seq, kind, data`` (a dict, stored as JSON), ``created_at``."""
    if rows:
        _INSERT_EVENTS.run_many(conn, [{**r, "data": json.dumps(r["data"])} for r in rows])


def add_logs(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        _INSERT_LOGS.run_many(conn, rows)


def events_after(conn: Connection, request_id: str, after: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(request_events)
        .where(and_(request_events.c.request_id == request_id, request_events.c.seq > after))
        .order_by(request_events.c.seq)
    ).mappings()
    return [{**r, "data": json.loads(r["data"])} for r in rows]


def logs_after(
    conn: Connection,
    request_id: str,
    after: int,
    function: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    query = select(call_logs).where(
        and_(call_logs.c.request_id == request_id, call_logs.c.seq > after)
    )
    if function:
        query = query.where(call_logs.c.function == function)
    query = query.order_by(call_logs.c.seq)
    if limit is not None:
        query = query.limit(limit)
    return [dict(r) for r in conn.execute(query).mappings()]


def last_seqs(conn: Connection, request_id: str) -> tuple[int, int]:
    """The highest event and log numbers recorded for a request (0 when none)."""
    events = conn.execute(
        select(func.max(request_events.c.seq)).where(request_events.c.request_id == request_id)
    ).scalar()
    logs = conn.execute(
        select(func.max(call_logs.c.seq)).where(call_logs.c.request_id == request_id)
    ).scalar()
    return int(events or 0), int(logs or 0)


def metric_summary(conn: Connection, request_id: str) -> list[dict[str, Any]]:
    """Per metric name and kind: how many values, their sum, min and max."""
    rows = conn.execute(
        select(
            metrics.c.name,
            metrics.c.kind,
            func.count(),
            func.sum(metrics.c.value),
            func.min(metrics.c.value),
            func.max(metrics.c.value),
        )
        .where(metrics.c.request_id == request_id)
        .group_by(metrics.c.name, metrics.c.kind)
        .order_by(metrics.c.name)
    )
    return [
        {"name": r[0], "kind": r[1], "count": int(r[2]), "sum": r[3], "min": r[4], "max": r[5]}
        for r in rows
    ]
