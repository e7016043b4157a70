"""Prepared statements (cove.store.prepared) behave as ``Connection.execute`` does: the same
rows written, the same row counts, the same exceptions, in the same transaction, on SQLite
and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    create_engine,
    select,
    update,
)
from sqlalchemy import exc as sa_exc

from cove.store.database import connection_lost, postgres_url
from cove.store.prepared import Prepared

meta = MetaData()
things = Table(
    "things",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(40), nullable=False, unique=True),
    Column("kind", String(20)),
    Column("size", Integer, nullable=False, default=0),
    Column("data", LargeBinary),
)
INSERT = Prepared(things.insert())
RESIZE = Prepared(
    update(things)
    .where(and_(things.c.name == bindparam("b_name"), things.c.kind == "box"))
    .values(size=bindparam("b_size"))
)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'prepared.db'}"
    else:
        url = postgres_url(request.getfixturevalue("postgres_url"))
    eng = create_engine(url)
    meta.create_all(eng)
    yield eng
    eng.dispose()


def _rows(conn: Connection) -> list[tuple[object, ...]]:
    query = select(things.c.name, things.c.kind, things.c.size, things.c.data)
    return [tuple(r) for r in conn.execute(query.order_by(things.c.name))]


def test_rows_and_counts_match_core(engine: Engine) -> None:
    with engine.begin() as conn:
        INSERT.run(conn, {"name": "a", "kind": "box", "size": 1, "data": b"\x00\xff"})
        INSERT.run_many(
            conn,
            [
                {"name": "b", "kind": "box", "size": 2},
                {"name": "c", "kind": "bag", "size": 3},
                {"name": "d", "size": 4, "data": b"x"},  # other keys: a plan of its own
            ],
        )
        assert RESIZE.run(conn, {"b_name": "a", "b_size": 10}) == 1
        assert RESIZE.run(conn, {"b_name": "c", "b_size": 10}) == 0  # a bag: the constant
        assert RESIZE.run(conn, {"b_name": "nothing", "b_size": 10}) == 0
    with engine.connect() as conn:
        assert _rows(conn) == [
            ("a", "box", 10, b"\x00\xff"),
            ("b", "box", 2, None),
            ("c", "bag", 3, None),
            ("d", None, 4, b"x"),
        ]


def test_a_rolled_back_transaction_takes_prepared_writes_with_it(engine: Engine) -> None:
    with engine.connect() as conn:
        tx = conn.begin()
        INSERT.run(conn, {"name": "gone", "size": 1})
        tx.rollback()
        assert _rows(conn) == []


def test_driver_errors_are_raised_as_sqlalchemy_raises_them(engine: Engine) -> None:
    with engine.connect() as conn:
        with conn.begin():
            INSERT.run(conn, {"name": "twice", "size": 1})
        tx = conn.begin()
        with pytest.raises(sa_exc.IntegrityError) as caught:
            INSERT.run(conn, {"name": "twice", "size": 2})
        tx.rollback()
        assert not caught.value.connection_invalidated
        assert not connection_lost(caught.value)  # a bad row, not a lost database
        with pytest.raises(sa_exc.IntegrityError), conn.begin():
            INSERT.run_many(conn, [{"name": "new", "size": 1}, {"name": "twice", "size": 1}])
        assert [r[0] for r in _rows(conn)] == ["twice"]  # "new" rolled back with the batch


def test_statements_that_return_rows_are_refused(engine: Engine) -> None:
    with engine.connect() as conn, pytest.raises(TypeError, match="must not return rows"):
        Prepared(select(things.c.id).where(things.c.name == bindparam("n"))).run(conn, {"n": "a"})
