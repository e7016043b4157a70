"""Hot-path statements compiled once per dialect and run on the driver's cursor.

SQLAlchemy Core spends 80-150 µs of CPU per ``Connection.execute`` of even a cached
statement (cache-key generation, parameter construction, an execution context, result
setup), several times what SQLite takes to run a small INSERT. The journal writes a handful
of rows per call, so on the per-call path that overhead was most of the writer thread's
CPU (docs/benchmarks.md, "The hot path"). A :class:`Prepared` statement is a Core statement
like any other; it is compiled once per dialect and parameter set, and then executed on
the DBAPI cursor of the same connection, inside the same transaction, with the same bind
processors (but those that change nothing SQLite stores, ``_NATIVE_ON_SQLITE``). A driver
error is raised as SQLAlchemy would raise it (a ``DBAPIError`` subclass, with
``connection_invalidated`` set for a lost connection), so callers cannot tell the
difference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Float, LargeBinary
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.dml import Insert

#: Types whose values sqlite3 binds as they are (bytes as a BLOB, floats and ints in a REAL
#: column as a REAL): their bind processors (a ``memoryview`` of each BLOB, ``float()`` of
#: each time) only cost CPU and memory per row there.
_NATIVE_ON_SQLITE = (LargeBinary, Float)


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    names: tuple[str, ...] | None  # bind names in order (positional paramstyles), else None
    constants: dict[str, Any]  # binds whose values the statement itself carries
    processors: dict[str, Callable[[Any], Any]]  # type conversions (e.g. LargeBinary)


class Prepared:
    """A Core statement executed without SQLAlchemy's per-execution work (see module doc).

    Parameters are keyed as for ``Connection.execute``: bind parameter names, or column
    names for an INSERT without ``values()``. The statement must not return rows."""

    __slots__ = ("_plans", "statement")

    def __init__(self, statement: ClauseElement) -> None:
        # An INSERT fetches no generated key back (PostgreSQL would add RETURNING id).
        self.statement = statement.inline() if isinstance(statement, Insert) else statement
        self._plans: dict[tuple[str, tuple[str, ...]], _Plan] = {}

    def run(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Execute once; returns the driver's row count."""
        plan = self._plan(conn.dialect, tuple(params))
        values = _values(plan, params)
        cursor = conn.connection.cursor()
        try:
            cursor.execute(plan.sql, values)
            return int(cursor.rowcount)
        except Exception as err:
            _reraise(conn, cursor, plan, values, err)
            raise
        finally:
            cursor.close()

    def run_many(self, conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        """Execute once per row (``executemany`` for each run of rows with the same keys)."""
        groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
        for row in rows:
            groups.setdefault(tuple(row), []).append(row)
        for keys, group in groups.items():
            plan = self._plan(conn.dialect, keys)
            values = [_values(plan, row) for row in group]
            cursor = conn.connection.cursor()
            try:
                cursor.executemany(plan.sql, values)
            except Exception as err:
                _reraise(conn, cursor, plan, values, err)
                raise
            finally:
                cursor.close()

    def _plan(self, dialect: Dialect, keys: tuple[str, ...]) -> _Plan:
        plan = self._plans.get((dialect.name, keys))
        if plan is None:
            plan = self._plans[(dialect.name, keys)] = _compile(self.statement, dialect, keys)
        return plan


def _compile(statement: ClauseElement, dialect: Dialect, keys: tuple[str, ...]) -> _Plan:
    compiled: Any = statement.compile(dialect=dialect, column_keys=list(keys))
    writes = compiled.isinsert or compiled.isupdate or compiled.isdelete
    if compiled.returning or not writes:
        raise TypeError("a Prepared statement must not return rows")
    constants = {
        name: value
        for name, value in compiled.construct_params(_check=False).items()
        if name not in keys
    }
    processors = {}
    for bind in compiled.binds.values():
        if dialect.name == "sqlite" and isinstance(bind.type, _NATIVE_ON_SQLITE):
            continue
        processor = bind.type.bind_processor(dialect)
        if processor is not None:
            processors[compiled.bind_names[bind]] = processor
    names = tuple(compiled.positiontup) if compiled.positional else None
    return _Plan(compiled.string, names, constants, processors)


def _values(plan: _Plan, params: Mapping[str, Any]) -> Any:
    if plan.constants:
        params = {**plan.constants, **params}
    processors = plan.processors
    if plan.names is None:  # named paramstyle (psycopg): a dict
        merged = dict(params)
        for name, convert in processors.items():
            if merged.get(name) is not None:
                merged[name] = convert(merged[name])
        return merged
    if not processors:
        return tuple([params[name] for name in plan.names])
    values = []
    for name in plan.names:
        value = params[name]
        processor = processors.get(name)
        values.append(value if processor is None or value is None else processor(value))
    return tuple(values)


def _reraise(conn: Connection, cursor: Any, plan: _Plan, values: Any, err: Exception) -> None:
    """Raise a driver's ``err`` as SQLAlchemy raises it from ``Connection.execute``; any
    other error is left to the caller to re-raise."""
    dialect = conn.dialect
    dbapi_error = dialect.loaded_dbapi.Error
    if not isinstance(err, dbapi_error):
        return
    lost = dialect.is_disconnect(err, conn.connection.dbapi_connection, cursor)
    if lost:
        conn.invalidate(err)
    raise sa_exc.DBAPIError.instance(
        plan.sql,
        values,
        err,
        dbapi_error,
        hide_parameters=True,
        connection_invalidated=lost,
        dialect=dialect,
    ) from err
