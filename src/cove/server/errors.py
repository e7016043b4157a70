"""The one place where error codes become HTTP statuses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cove.errors import CoveError, DatabaseUnavailableError, ErrorCode, storage_full

log = logging.getLogger(__name__)

STATUS_OF: dict[ErrorCode, int] = {
    ErrorCode.SDK_USAGE: 400,
    ErrorCode.INVALID_INPUT: 400,
    ErrorCode.SERIALIZATION: 400,
    ErrorCode.DESERIALIZATION: 400,
    ErrorCode.DEPLOY_FAILED: 400,
    ErrorCode.APPLICATION_NOT_FOUND: 404,
    ErrorCode.REQUEST_NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.REQUEST_NOT_FINISHED: 202,
    ErrorCode.REQUEST_FAILED: 500,
    ErrorCode.REQUEST_ERROR: 500,
    ErrorCode.FUNCTION_ERROR: 500,
    ErrorCode.FUNCTION_TIMEOUT: 500,
    ErrorCode.CANCELLED: 409,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.DATABASE_UNAVAILABLE: 503,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.RANGE_NOT_SATISFIABLE: 416,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.TOO_MANY_REQUESTS: 429,
    ErrorCode.REQUEST_TIMEOUT: 408,
    ErrorCode.HEADERS_TOO_LARGE: 431,
    # Data the server's blob store should hold and does not: the server's fault (or its
    # configuration's), not the client's, and not transient either, so no 503.
    ErrorCode.BLOB_MISSING: 500,
    # The data folder's file system (or the database) is full: nothing was kept; the same
    # call succeeds once space is freed (WebDAV's Insufficient Storage).
    ErrorCode.STORAGE_FULL: 507,
    ErrorCode.INTERNAL: 500,
}


#: ``Retry-After`` (seconds) of a 503 whose error does not say (``retry_after``).
RETRY_AFTER_SECONDS = 1


def status_and_headers(err: CoveError) -> tuple[int, dict[str, str]]:
    """The HTTP status of ``err``'s code, and the headers that go with it: a 503 says when
    to try again (``Retry-After``). Every API's answers come from here."""
    status = STATUS_OF.get(err.code, 500)
    headers = {}
    if status == 503:
        headers["Retry-After"] = str(int(err.details.get("retry_after") or RETRY_AFTER_SECONDS))
    return status, headers


def error_response(err: CoveError) -> JSONResponse:
    status, headers = status_and_headers(err)
    return JSONResponse({"error": err.to_dict()}, status_code=status, headers=headers)


def response_for(exc: Exception) -> JSONResponse:
    """The answer to an exception a route raised: a CoveError by its code; a full disk
    (ENOSPC, SQLITE_FULL, PostgreSQL's disk_full) as ``storage_full``; a lost database as
    ``database_unavailable``; anything else as ``internal`` (and logged)."""
    if isinstance(exc, CoveError):
        return error_response(exc)
    full = storage_full(exc)
    if full is not None:
        return error_response(full)
    if not isinstance(exc, OSError):
        from cove.store.database import RETRY_AFTER_SECONDS as wait
        from cove.store.database import connection_lost

        if connection_lost(exc):  # the database went away under a read or write
            message = f"the database is unreachable: {str(exc).splitlines()[0]}"
            return error_response(DatabaseUnavailableError(message, retry_after=wait))
    log.exception("unexpected error", exc_info=exc)
    body = {"error": {"code": ErrorCode.INTERNAL.value, "message": f"internal error: {exc}"}}
    return JSONResponse(body, status_code=500)


def install(app: FastAPI) -> None:
    @app.exception_handler(CoveError)
    async def on_cove_error(_request: Request, exc: CoveError) -> JSONResponse:
        return error_response(exc)

    # OSError is handled here, not only by the catch-all below: an error that reaches
    # Starlette's last handler also closes the client's connection after the answer.
    @app.exception_handler(OSError)
    async def on_os_error(_request: Request, exc: OSError) -> JSONResponse:
        return response_for(exc)

    @app.exception_handler(Exception)
    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        return response_for(exc)
