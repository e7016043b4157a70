"""Routes: what a request was given (its input) and what it keeps (its state keys).

The input is the entry call's arguments as the server recorded them: JSON values, and
``File`` parameters described by their content type and size, each downloadable. State
values are pickles written by the application's code: the server lists their keys and
sizes but never unpickles them.
"""

from __future__ import annotations

import pickle
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from cove.blobs import BlobRef
from cove.engine.keys import public_name
from cove.errors import ErrorCode, InternalError, NotFoundError
from cove.sdk.file import File
from cove.sdk.http import HEADERS_STATE_KEY
from cove.server.applications import engine_of
from cove.server.files import output_response
from cove.server.observe import request_row
from cove.server.views import iso
from cove.store import journal as j

router = APIRouter(tags=["observability"])


async def request_input(request: Request, app: str, request_id: str) -> dict[str, Any]:
    """The request's arguments by parameter name (``File`` values as they were uploaded)."""
    engine = engine_of(request)
    await request_row(request, app, request_id)
    root = await engine.store.read(lambda c: j.root_call(c, request_id))
    if root is None:
        raise InternalError(f"request {request_id} has no entry call")
    raw = engine.payloads.load(j.Payload(root["args_inline"], root["args_blob"]))
    # The server pickled these itself from the JSON body and uploads (Engine.invoke).
    values = pickle.loads(raw) if raw else {}
    if not isinstance(values, dict):
        raise InternalError(f"request {request_id}: its recorded input is not by parameter")
    return values


def _describe(value: Any, url: str) -> Any:
    if isinstance(value, File):
        return {"file": {"content_type": value.content_type, "size": value.size, "url": url}}
    return value


@router.get("/applications/{app}/requests/{request_id}/input", summary="A request's input")
async def get_input(app: str, request_id: str, request: Request) -> dict[str, Any]:
    """The arguments the request was invoked with, by parameter name. A ``File`` parameter
    is ``{"file": {"content_type", "size", "url"}}``; its ``url`` answers its bytes."""
    values = await request_input(request, app, request_id)
    base = f"/applications/{public_name(app)}/requests/{request_id}/input"
    return {
        "request_id": request_id,
        "input": {name: _describe(v, f"{base}/{name}") for name, v in values.items()},
    }


@router.get(
    "/applications/{app}/requests/{request_id}/input/{parameter}",
    summary="One argument of a request (a File's bytes)",
)
async def get_input_value(app: str, request_id: str, parameter: str, request: Request) -> Response:
    """A ``File`` argument's bytes with its content type (``Range`` works); any other
    argument as JSON."""
    values = await request_input(request, app, request_id)
    if parameter not in values:
        raise NotFoundError(
            f"request {request_id} has no argument {parameter!r}",
            code=ErrorCode.REQUEST_NOT_FOUND,
            request_id=request_id,
            parameter=parameter,
        )
    value = values[parameter]
    headers = {"X-Cove-Request-Id": request_id}
    if not isinstance(value, File):
        return JSONResponse(value, headers=headers)
    key = value.blob_key
    data: bytes | BlobRef = BlobRef(key, value.size) if key is not None else value.content
    blobs = engine_of(request).blobs
    return await output_response(request, blobs, data, value.content_type, headers)


@router.get("/applications/{app}/requests/{request_id}/state", summary="A request's state keys")
async def get_state(app: str, request_id: str, request: Request) -> dict[str, Any]:
    """The keys the request's calls set with ``RequestContext.state.set``, with each
    value's size in bytes (pickled) and when it was last set. Values are not shown."""
    await request_row(request, app, request_id)
    engine = engine_of(request)

    def read(conn: Any) -> list[dict[str, Any]]:
        return j.state_rows(conn, request_id)

    rows = await engine.store.read(read)
    keys = []
    for r in rows:
        if r["key"] == HEADERS_STATE_KEY:
            continue  # the request's headers, kept as state: not a key its calls set
        if r["value_blob"]:
            size: int | None = engine.blobs.size(r["value_blob"])
        else:
            size = len(r["value_inline"]) if r["value_inline"] is not None else None
        keys.append({"key": r["key"], "size": size, "updated_at": iso(r["updated_at"])})
    return {"request_id": request_id, "state": keys}
