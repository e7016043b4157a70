"""Numbered schema migrations, applied in order on start and recorded in a version table."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, Table, func, select

from cove.store import schema


def _create(*tables: Table) -> Callable[[Connection], None]:
    def step(conn: Connection) -> None:
        schema.metadata.create_all(conn, tables=list(tables))

    return step


# Append new migrations; never edit one that has shipped.
MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (
        1,
        _create(
            schema.applications,
            schema.app_versions,
            schema.requests,
            schema.function_calls,
            schema.request_state,
            schema.progress,
            schema.metrics,
        ),
    ),
    (2, _create(schema.call_attempts, schema.request_replays)),
    (3, _create(schema.request_events, schema.call_logs)),
    (4, _create(schema.api_keys)),
    (5, _create(schema.request_leases)),
    (6, _create(schema.secrets, schema.images, schema.replicas)),
    (7, _create(schema.blob_stores)),
]


def current_version(conn: Connection) -> int:
    schema.schema_version.create(conn, checkfirst=True)
    found = conn.execute(select(func.max(schema.schema_version.c.version))).scalar()
    return int(found or 0)


def migrate(conn: Connection) -> int:
    """Bring the schema up to date; returns the version reached."""
    version = current_version(conn)
    for number, step in MIGRATIONS:
        if number > version:
            step(conn)
            conn.execute(
                schema.schema_version.insert().values(version=number, applied_at=time.time())
            )
            version = number
    return version
