"""Routes to watch a request: its progress events, logs, metrics and timeline.

Progress and logs are Server-Sent Events (``?format=json`` / ``follow=false`` for plain
JSON): each event's ``id`` is its number in the request's stream, so a client that
reconnects with ``Last-Event-ID`` (or ``?after=``) resumes after the last one it got.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from cove.engine.events import Entry, EventLog
from cove.engine.keys import public_name
from cove.errors import InvalidInputError, request_not_found
from cove.server.applications import engine_of
from cove.server.views import iso
from cove.store import journal as j
from cove.store import observations as obs

router = APIRouter(tags=["observability"])
KEEPALIVE_SECONDS = 15.0
_KEEPALIVE = Query(
    KEEPALIVE_SECONDS, gt=0, le=300, description="seconds between keep-alive comments"
)
_AFTER = Query(None, ge=0, description="resume after this event id (as Last-Event-ID)")


async def request_row(request: Request, app: str, request_id: str) -> dict[str, Any]:
    """The request's row; 404 when the application has no such request."""
    engine = engine_of(request)
    engine.deployments.get(app)
    row = await engine.store.read(lambda c: j.get_request(c, request_id))
    if row is None or row["app"] != app:
        raise request_not_found(app, request_id)
    return row


def resume_point(request: Request, after: int | None) -> int:
    """Where a stream resumes: ``?after=``, else the ``Last-Event-ID`` header, else 0."""
    if after is not None:
        return after
    header = request.headers.get("last-event-id")
    if not header:
        return 0
    try:
        return max(0, int(header))
    except ValueError:
        raise InvalidInputError(f"Last-Event-ID must be an event id, got {header!r}") from None


def sse(entries: AsyncIterator[Entry | None], request_id: str) -> StreamingResponse:
    """Entries as Server-Sent Events (``id``, ``event`` = the type, ``data`` = the JSON)."""

    async def body() -> AsyncIterator[bytes]:
        yield b"retry: 1000\n\n"
        async for entry in entries:
            if entry is None:
                yield b": keep-alive\n\n"
                continue
            data = json.dumps(entry.as_json(), separators=(",", ":"))
            yield f"id: {entry.seq}\nevent: {entry.kind}\ndata: {data}\n\n".encode()

    headers = {
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # proxies must not hold events back
        "X-Cove-Request-Id": request_id,
    }
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


def wants_event_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


def progress_stream(
    events: EventLog, request_id: str, after: int = 0, keepalive: float = KEEPALIVE_SECONDS
) -> StreamingResponse:
    """The request's event stream, from ``after`` on, live until it finishes."""
    return sse(events.follow(request_id, after, keepalive=keepalive), request_id)


@router.get("/applications/{app}/requests/{request_id}/progress", summary="A request's events")
async def progress(
    app: str,
    request_id: str,
    request: Request,
    format: str = Query("sse", pattern="^(sse|json)$", description="sse, or json to poll"),
    after: int | None = _AFTER,
    keepalive: float = _KEEPALIVE,
) -> Any:
    """Server-Sent Events, replayed from the start (or after ``Last-Event-ID``) and live
    until the request finishes: ``request_started``, ``call_started``, ``call_finished``,
    ``progress`` and ``request_finished`` (with the output inline when it is small JSON,
    and its URL). ``?format=json`` answers the events so far as a list."""
    row = await request_row(request, app, request_id)
    events = engine_of(request).events
    start = resume_point(request, after)
    if format == "json":
        entries = await events.snapshot(request_id, start)
        status = row["status"]
        finished = [e for e in entries if e.kind == "request_finished"]
        if finished and not events.running(request_id):
            status = finished[-1].data["status"]
        return {
            "request_id": request_id,
            "status": status,
            "events": [e.as_json() for e in entries],
            "last_event_id": entries[-1].seq if entries else start,
        }
    return progress_stream(events, request_id, start, keepalive)


@router.get("/applications/{app}/requests/{request_id}/logs", summary="A request's logs")
async def logs(
    app: str,
    request_id: str,
    request: Request,
    function: str | None = Query(None, description="only this function's lines"),
    follow: bool = Query(False, description="stream as Server-Sent Events until it finishes"),
    after: int | None = _AFTER,
    limit: int = Query(1000, ge=1, le=10_000),
    keepalive: float = _KEEPALIVE,
) -> Any:
    """What the request's calls printed (``stdout``, ``stderr``) and logged (``log``, with
    the level), each line with its time, function, call id, attempt and container."""
    await request_row(request, app, request_id)
    engine = engine_of(request)
    start = resume_point(request, after)
    if follow:
        lines = engine.events.follow(request_id, start, logs=True, keepalive=keepalive)
        return sse(_only(lines, function), request_id)
    rows = await engine.store.read(lambda c: obs.logs_after(c, request_id, start, function, limit))
    entries = [_log_entry(r) for r in rows]
    if len(entries) < limit:  # lines not journaled yet are in memory
        last = entries[-1]["id"] if entries else start
        live = [e for e in await engine.events.snapshot(request_id, last, logs=True)]
        live = [e for e in live if not function or e.data.get("function") == function]
        entries += [e.as_json() for e in live[: limit - len(entries)]]
    return {
        "request_id": request_id,
        "logs": entries,
        "last_event_id": entries[-1]["id"] if entries else start,
    }


async def _only(
    lines: AsyncIterator[Entry | None], function: str | None
) -> AsyncIterator[Entry | None]:
    async for entry in lines:
        if entry is None or not function or entry.data.get("function") == function:
            yield entry


def _log_entry(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("call_id", "function", "attempt", "container", "stream", "level", "message")
    return {"id": r["seq"], "type": "log", "at": iso(r["created_at"]), **{k: r[k] for k in keys}}


@router.get("/applications/{app}/requests/{request_id}/metrics", summary="A request's metrics")
async def request_metrics(app: str, request_id: str, request: Request) -> dict[str, Any]:
    """The request's custom metrics (``RequestContext.metrics``): per name, its kind
    (``counter`` or ``timer``) and the count, sum, min and max of the values recorded."""
    await request_row(request, app, request_id)
    rows = await engine_of(request).store.read(lambda c: obs.metric_summary(c, request_id))
    metrics: dict[str, Any] = {}
    for r in rows:
        key = r["name"] if r["name"] not in metrics else f"{r['name']}:{r['kind']}"
        metrics[key] = {k: r[k] for k in ("kind", "count", "sum", "min", "max")}
    return {"request_id": request_id, "metrics": metrics}


@router.get("/applications/{app}/requests/{request_id}/timeline", summary="A request's timeline")
async def timeline(app: str, request_id: str, request: Request) -> dict[str, Any]:
    """Every call with its parent, function and status, and each of its attempts with its
    container and times: queued, started, finished (ISO), and ``start``/``end`` in seconds
    since the request was created, enough to draw the request as a Gantt chart."""
    row = await request_row(request, app, request_id)

    def read(conn: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return j.calls_of(conn, request_id), j.attempts_of(conn, request_id)

    calls, attempts = await engine_of(request).store.read(read)
    return timeline_view(row, calls, attempts)


def timeline_view(
    row: dict[str, Any], calls: list[dict[str, Any]], attempts: list[dict[str, Any]]
) -> dict[str, Any]:
    origin = float(row["created_at"])

    def offset(ts: float | None) -> float | None:
        return None if ts is None else round(ts - origin, 6)

    history: dict[str, list[dict[str, Any]]] = {}
    for a in attempts:
        tries = history.setdefault(a["call_id"], [])
        queued = tries[-1]["_finished"] if tries else None
        tries.append(
            {
                "attempt": a["attempt"],
                "container": a["container"],
                "status": a["status"],
                "queued_at": iso(queued) if queued is not None else None,
                "started_at": iso(a["started_at"]),
                "finished_at": iso(a["finished_at"]) if a["finished_at"] else None,
                "start": offset(a["started_at"]),
                "end": offset(a["finished_at"]),
                "error": json.loads(a["error"]) if a["error"] else None,
                "_finished": a["finished_at"],
            }
        )
    out = []
    for c in calls:
        tries = history.get(c["call_id"], [])
        if tries and tries[0]["queued_at"] is None:
            tries[0]["queued_at"] = iso(c["created_at"])
        for t in tries:
            t.pop("_finished", None)
        out.append(
            {
                "id": c["call_id"],
                "parent_id": c["parent_id"],
                "function": c["function"],
                "status": c["status"],
                "attempts": len(tries),
                "queued_at": iso(c["created_at"]),
                "started_at": iso(c["started_at"]) if c["started_at"] else None,
                "finished_at": iso(c["finished_at"]) if c["finished_at"] else None,
                "queued": offset(c["created_at"]),
                "attempt_history": tries,
            }
        )
    return {
        "request_id": row["id"],
        "application": public_name(row["app"]),
        "status": row["status"],
        "created_at": iso(origin),
        "finished_at": iso(row["finished_at"]) if row["finished_at"] else None,
        "duration": offset(row["finished_at"]),
        "calls": out,
    }
