"""Proof of concept: the benchmarks against a server with the store fixes they suggest.

This monkeypatches ``cove`` as it stood on 2026-11-22 (see docs/benchmarks.md,
"Where the time goes"); it is an experiment to size the fixes, not a supported mode, and
it may stop applying as ``src/cove`` changes.

    python -m benchmarks.experiments.store_fixes [--quick] [--json PATH] ...

takes the options of ``python -m benchmarks``. ``COVE_FIXES`` (comma-separated, default
``stmts,conn,output,lazy``) picks the fixes:

``stmts``
    ``cove/store/journal.py``: statements built once with ``bindparam()`` and executed with
    a parameter dict, instead of ``update(...).where(...).values(**literals)`` built (and
    cache-keyed) on every call; ``insert_call`` as one ``INSERT OR IGNORE``.
``conn``
    ``cove/store/database.py`` ``Store._commit``: the writer thread keeps one connection
    instead of checking one out of the pool (and resetting it) for every batch.
``output``
    ``cove/server/requests.py`` ``_output``: a ``?wait`` request that finished while its
    handler waited is answered from the engine's memory, not with three store reads.
``lazy``
    ``Store._run``: writes nobody waits for (call starts, child-call inserts) are held for at
    most 20 ms and committed with the next write somebody waits for, so a child call costs
    one fsync under ``synchronous=FULL`` instead of two or three.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import time
from typing import Any

FIXES_ENV = "COVE_FIXES"
ALL_FIXES = ("stmts", "conn", "output", "lazy")
SERVE_FLAG = "--serve"
LAZY_SECONDS = 0.020


def patch_statements() -> None:
    from sqlalchemy import and_, bindparam, select, update

    from cove.store import journal as j
    from cove.store.schema import function_calls as fc
    from cove.store.schema import requests as rq

    call = and_(fc.c.request_id == bindparam("b_rid"), fc.c.call_id == bindparam("b_cid"))
    start = (
        update(fc)
        .where(call)
        .values(status="running", attempts=bindparam("b_att"), started_at=bindparam("b_now"))
    )
    finish_call_stmt = (
        update(fc)
        .where(call)
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
    finish_request_stmt = (
        update(rq)
        .where(rq.c.id == bindparam("b_rid"))
        .values(
            status=bindparam("b_status"),
            finished_at=bindparam("b_now"),
            content_type=bindparam("b_ct"),
            error=bindparam("b_err"),
        )
    )
    running = (
        update(rq)
        .where(and_(rq.c.id == bindparam("b_rid"), rq.c.status == "pending"))
        .values(status="running")
    )
    insert_request, insert_root = rq.insert(), fc.insert()
    insert_child = fc.insert().prefix_with("OR IGNORE", dialect="sqlite")
    get_request_stmt = select(rq).where(rq.c.id == bindparam("b_rid"))
    root_stmt = select(fc).where(and_(fc.c.request_id == bindparam("b_rid"), fc.c.call_id == "0"))
    original_create = j.create_request

    def start_call(conn: Any, request_id: str, call_id: str, attempts: int, now: float) -> None:
        conn.execute(
            start, {"b_rid": request_id, "b_cid": call_id, "b_att": attempts, "b_now": now}
        )

    def finish_call(
        conn: Any,
        request_id: str,
        call_id: str,
        status: str,
        now: float,
        attempts: int,
        output: Any = None,
        content_type: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        params = {
            "b_rid": request_id,
            "b_cid": call_id,
            "b_status": status,
            "b_now": now,
            "b_att": attempts,
            "b_oi": output.inline if output else None,
            "b_ob": output.blob if output else None,
            "b_ct": content_type,
            "b_err": json.dumps(error) if error else None,
        }
        conn.execute(finish_call_stmt, params)

    def finish_request(
        conn: Any,
        request_id: str,
        status: str,
        now: float,
        content_type: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        params = {
            "b_rid": request_id,
            "b_status": status,
            "b_now": now,
            "b_ct": content_type,
            "b_err": json.dumps(error) if error else None,
        }
        conn.execute(finish_request_stmt, params)

    def mark_request_running(conn: Any, request_id: str) -> None:
        conn.execute(running, {"b_rid": request_id})

    def create_request(
        conn: Any, request: dict[str, Any], root_call: dict[str, Any]
    ) -> tuple[str, bool]:
        if request.get("idempotency_key") is not None:
            return original_create(conn, request, root_call)
        conn.execute(insert_request, request)
        conn.execute(insert_root, root_call)
        return str(request["id"]), True

    def insert_call(conn: Any, row: dict[str, Any]) -> None:
        conn.execute(insert_child, row)

    def get_request(conn: Any, request_id: str) -> dict[str, Any] | None:
        row = conn.execute(get_request_stmt, {"b_rid": request_id}).mappings().first()
        return dict(row) if row else None

    def root_call(conn: Any, request_id: str) -> dict[str, Any] | None:
        row = conn.execute(root_stmt, {"b_rid": request_id}).mappings().first()
        return dict(row) if row else None

    for fn in (
        start_call,
        finish_call,
        finish_request,
        mark_request_running,
        create_request,
        insert_call,
        get_request,
        root_call,
    ):
        setattr(j, fn.__name__, fn)


def patch_writer_connection() -> None:
    from cove.store import database as db

    def _commit(self: Any, batch: list[Any]) -> None:
        conn = getattr(self, "_held_connection", None)
        if conn is None:
            conn = self._held_connection = self.writer_engine.connect()
        try:
            with conn.begin():
                results = [item.op(conn) for item in batch]
            self.commits += 1
        except Exception:
            if len(batch) > 1:
                for item in batch:
                    self._commit([item])
                return
            db._notify(batch[0], None, db._current_error())
            return
        for item, result in zip(batch, results, strict=True):
            db._notify(item, result, None)

    db.Store._commit = _commit  # type: ignore[method-assign]


def patch_output_from_memory() -> None:
    from starlette.responses import Response

    from cove.engine import engine as engine_module
    from cove.server import requests as routes
    from cove.server.applications import engine_of

    original_close = engine_module.Engine._close
    original_output = routes._output

    def _close(self: Any, run: Any, status: str) -> None:
        recent = self.__dict__.setdefault("_recent_runs", {})
        recent[run.id] = run
        if len(recent) > 1000:
            recent.pop(next(iter(recent)))
        original_close(self, run, status)

    async def _output(request: Any, app: str, request_id: str, pending_status: int) -> Any:
        engine = engine_of(request)
        run = engine.__dict__.get("_recent_runs", {}).pop(request_id, None)
        root = run.calls.get("0") if run is not None else None
        if run is not None and root is not None and run.status == "succeeded" and run.app == app:
            headers = {
                "X-Cove-Request-Id": request_id,
                "Content-Type": root.content_type or "application/json",
            }
            return Response(root.output, headers=headers)
        return await original_output(request, app, request_id, pending_status)

    engine_module.Engine._close = _close  # type: ignore[method-assign]
    routes._output = _output


def patch_lazy_writes() -> None:
    from cove.store import database as db

    def _run(self: Any) -> None:
        held: list[Any] = []
        deadline = 0.0
        while True:
            try:
                if held:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                else:
                    item = self._queue.get()
            except queue.Empty:  # only unawaited writes, and their time is up
                self._commit(held)
                held = []
                continue
            stop = item is None
            if not stop:
                if not held:
                    deadline = time.monotonic() + LAZY_SECONDS
                held.append(item)
            while not stop and len(held) < db._BATCH_LIMIT:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                held.append(item)
            awaited = any(i.done is not None for i in held)
            if held and (stop or awaited or len(held) >= db._BATCH_LIMIT):
                self._commit(held)
                held = []
            if stop:
                return

    db.Store._run = _run  # type: ignore[method-assign]


PATCHES = {
    "stmts": patch_statements,
    "conn": patch_writer_connection,
    "output": patch_output_from_memory,
    "lazy": patch_lazy_writes,
}


def serve(argv: list[str]) -> None:
    """The server side: patch, then run the Cove CLI with ``argv``."""
    chosen = (os.environ.get(FIXES_ENV) or ",".join(ALL_FIXES)).split(",")
    for name in chosen:
        if name.strip():
            PATCHES[name.strip()]()
    from cove.cli.main import main

    sys.argv = ["cove", *argv]
    main()


def bench(argv: list[str]) -> int:
    """The client side: the benchmark suite, with servers started through :func:`serve`."""
    from benchmarks.__main__ import RESULTS, main
    from benchmarks.server import ServerProcess

    ServerProcess.launcher = ("-m", "benchmarks.experiments.store_fixes", SERVE_FLAG)
    chosen = os.environ.get(FIXES_ENV) or ",".join(ALL_FIXES)
    return main(
        argv,
        experiment=f"store fixes {chosen}",
        default_json=RESULTS / "experiment-store-fixes.json",
    )


if __name__ == "__main__":
    if sys.argv[1:2] == [SERVE_FLAG]:
        serve(sys.argv[2:])
    else:
        sys.exit(bench(sys.argv[1:]))
