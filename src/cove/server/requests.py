"""Routes: invoke an application, and read its requests' status and output."""

from __future__ import annotations

import base64
import json
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from cove.blobs import BlobRef
from cove.engine.model import Outcome
from cove.errors import (
    ConflictError,
    ErrorCode,
    InternalError,
    InvalidInputError,
    RequestFailed,
    request_not_found,
)
from cove.sdk.http import public_headers
from cove.server import observe, views
from cove.server.applications import engine_of
from cove.server.errors import error_response
from cove.server.files import output_response
from cove.server.inputs import Upload, fingerprint, read_arguments
from cove.store import journal as j

router = APIRouter(tags=["requests"])


def _wait_seconds(request: Request, wait: float | None) -> float | None:
    if wait is None:
        return None
    limit = engine_of(request).settings.max_wait
    if not 0 <= wait <= limit:
        raise InvalidInputError(f"wait must be between 0 and {limit:g} seconds, got {wait:g}")
    return wait


@router.post("/applications/{app}", summary="Invoke an application")
async def invoke(
    app: str,
    request: Request,
    wait: float | None = Query(None, description="seconds to wait for the output"),
) -> Response:
    """Starts a request. Answers ``{"request_id"}``; with ``?wait=`` and a request that
    finishes in time, answers with the output as ``/output`` would."""
    engine = engine_of(request)
    seconds = _wait_seconds(request, wait)
    manifest = engine.deployments.get(app).application
    settings = engine.settings
    # Files stream to blobs; a JSON body is read whole, so it has a limit of its own.
    upload = Upload(engine.blobs, settings.max_upload_bytes, settings.max_json_bytes)
    values = await read_arguments(request, manifest, upload)
    key = request.headers.get("idempotency-key")
    stream = observe.wants_event_stream(request)
    # A client waiting for the output hears nothing before it: the request's record may
    # then commit with the output's, one commit instead of two.
    later = bool(seconds) and not stream
    request_id, _created = await engine.invoke(
        app,
        values,
        key,
        fingerprint(values) if key is not None else None,  # only a key needs it
        answer_later=later,
        headers=public_headers(request.headers.items()),
    )
    if stream:  # the request's events, live (GET .../progress)
        return observe.progress_stream(engine.events, request_id)
    if seconds:
        await engine.wait(request_id, seconds)
        await engine.recorded(request_id)
        return await _output(request, app, request_id, pending_status=202)
    return JSONResponse({"request_id": request_id}, headers={"X-Cove-Request-Id": request_id})


@router.get("/applications/{app}/requests/{request_id}", summary="A request's status")
async def get_request(app: str, request_id: str, request: Request) -> dict[str, Any]:
    row = await observe.request_row(request, app, request_id)
    store = engine_of(request).store

    def read(conn: Any) -> views.RequestRecords:
        return views.RequestRecords(
            calls=j.calls_of(conn, request_id),
            attempts=j.attempts_of(conn, request_id),
            progress=j.progress_of(conn, request_id),
            metrics=j.metrics_of(conn, request_id),
            replay=j.replay_of(conn, request_id),
        )

    return views.request_detail(row, await store.read(read))


@router.delete("/applications/{app}/requests/{request_id}", summary="Cancel a request")
async def cancel_request(app: str, request_id: str, request: Request) -> dict[str, Any]:
    """Stops a running request: running calls stop, queued ones never start, and it ends
    ``cancelled`` for good (a restart does not resume it)."""
    engine = engine_of(request)
    row = await observe.request_row(request, app, request_id)
    if not await engine.cancel(request_id):
        raise ConflictError(
            f"request {request_id} already {row['status']}: there is nothing to cancel",
            request_id=request_id,
            status=row["status"],
        )
    return {"id": request_id, "status": "cancelled"}


@router.post("/applications/{app}/requests/{request_id}/replay", summary="Replay a request")
async def replay_request(
    app: str,
    request_id: str,
    request: Request,
    upgrade: bool = Query(False, description="run on the latest deployed version"),
) -> dict[str, Any]:
    """Runs a failed or cancelled request again under the same id. Every call whose output
    the journal holds is reused, so only what failed runs again."""
    version = await engine_of(request).replay(app, request_id, upgrade)
    return {"request_id": request_id, "status": "pending", "application_version": version}


@router.get("/applications/{app}/requests/{request_id}/output", summary="A request's output")
async def get_output(
    app: str, request_id: str, request: Request, wait: float | None = Query(None)
) -> Response:
    seconds = _wait_seconds(request, wait)
    if seconds:
        await engine_of(request).wait(request_id, seconds)
    return await _output(request, app, request_id, pending_status=202)


async def _outcome(request: Request, app: str, request_id: str) -> Outcome:
    """How the request ended (from memory when it ended lately), or its current status."""
    engine = engine_of(request)
    outcome = engine.recent.get(request_id)
    if outcome is not None and outcome.app == app and not outcome.output_let_go:
        return outcome
    engine.deployments.get(app)

    def read(conn: Any) -> Outcome | None:
        row = j.get_request(conn, request_id)
        if row is None or row["app"] != app:
            return None
        data = None
        if row["status"] == "succeeded":
            root = j.root_call(conn, request_id)
            if root is None:
                raise InternalError(f"request {request_id} has no entry call")
            data = root["output_inline"]
            if root["output_blob"]:  # streamed from the blob store when asked for
                blob = root["output_blob"]
                data = BlobRef(blob, engine.blobs.size(blob))
        error = json.loads(row["error"]) if row["error"] else None
        return Outcome(app, row["status"], row["content_type"], data, error)

    found = await engine.store.read(read)
    if found is None:
        raise request_not_found(app, request_id)
    return found


async def _output(request: Request, app: str, request_id: str, pending_status: int) -> Response:
    outcome = await _outcome(request, app, request_id)
    headers = {"X-Cove-Request-Id": request_id}
    status = outcome.status
    if status in ("pending", "running"):
        body = {"request_id": request_id, "status": status}
        return JSONResponse(body, status_code=pending_status, headers=headers)
    if status != "succeeded":
        error = outcome.error or {}
        code = ErrorCode.CANCELLED if status == "cancelled" else ErrorCode.REQUEST_FAILED
        err = RequestFailed(
            f"request {request_id} {status}: {error.get('message')}",
            code=code,
            request_id=request_id,
            reason=error.get("reason") or "request_failed",
            function_name=error.get("function_name"),
            error_type=error.get("error_type"),
        )
        response = error_response(err)
        response.headers.update(headers)
        return response
    # The File's own content type, verbatim (no charset added).
    blobs, content_type = engine_of(request).blobs, outcome.content_type or "application/json"
    return await output_response(request, blobs, outcome.output, content_type, headers)


@router.get("/applications/{app}/requests", summary="List requests, newest first")
async def list_requests(
    app: str,
    request: Request,
    limit: int = Query(20, ge=1, le=200),
    cursor: str | None = Query(None),
    status: str | None = Query(
        None,
        pattern="^(pending|running|succeeded|failed|cancelled)$",
        description="only requests in this status",
    ),
) -> dict[str, Any]:
    engine = engine_of(request)
    engine.deployments.get(app)
    before = _decode_cursor(cursor) if cursor else None
    rows = await engine.store.read(lambda c: j.list_requests(c, app, limit + 1, before, status))
    page, more = rows[:limit], len(rows) > limit
    next_cursor = _encode_cursor(page[-1]) if more and page else None
    return {"requests": [views.request_summary(r) for r in page], "next_cursor": next_cursor}


def _encode_cursor(row: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps([row["created_at"], row["id"]]).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        created, rid = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(created), str(rid)
    except Exception:
        raise InvalidInputError(f"cursor {cursor!r} is not one this server handed out") from None
