"""Numbered schema migrations, applied in order on start and recorded in a version table."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, func, select

from cove.store import schema


def _v1_initial(conn: Connection) -> None:
    tables = [t for t in schema.metadata.sorted_tables if t is not schema.schema_version]
    schema.metadata.create_all(conn, tables=tables)


# Append new migrations; never edit one that has shipped.
MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _v1_initial),
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
