"""One error hierarchy for the SDK, the engine and the HTTP API.

Every error carries an :class:`ErrorCode`; the HTTP layer maps codes to statuses in one
place (``cove.server.errors``), and clients turn error JSON back into these classes.
"""

from __future__ import annotations

import builtins
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Stable, machine-readable error codes (also the ``code`` field of error JSON)."""

    SDK_USAGE = "sdk_usage"
    INVALID_INPUT = "invalid_input"
    SERIALIZATION = "serialization_error"
    DESERIALIZATION = "deserialization_error"
    APPLICATION_NOT_FOUND = "application_not_found"
    REQUEST_NOT_FOUND = "request_not_found"
    DEPLOY_FAILED = "deploy_failed"
    CONFLICT = "conflict"
    REQUEST_NOT_FINISHED = "request_not_finished"
    REQUEST_FAILED = "request_failed"
    REQUEST_ERROR = "request_error"
    FUNCTION_ERROR = "function_error"
    FUNCTION_TIMEOUT = "function_timeout"
    CANCELLED = "cancelled"
    UNAVAILABLE = "unavailable"
    DATABASE_UNAVAILABLE = "database_unavailable"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    RANGE_NOT_SATISFIABLE = "range_not_satisfiable"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    TOO_MANY_REQUESTS = "too_many_requests"
    REQUEST_TIMEOUT = "request_timeout"
    HEADERS_TOO_LARGE = "headers_too_large"
    BLOB_MISSING = "blob_missing"
    STORAGE_FULL = "storage_full"
    INTERNAL = "internal_error"


class CoveError(Exception):
    """Base of every error Cove raises. ``code`` says what kind of failure it is."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, *, code: ErrorCode | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        """The error as JSON-ready data: ``{"code", "message", **details}``."""
        return {"code": self.code.value, "message": self.message, **self.details}

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (container -> server -> parent container).
        return (_rebuild_error, (type(self), self.message, self.code, self.details))


def _rebuild_error(
    cls: type[CoveError], message: str, code: ErrorCode, details: dict[str, Any]
) -> CoveError:
    err = cls.__new__(cls)
    CoveError.__init__(err, message, code=code, **details)
    return err


class SDKUsageError(CoveError):
    """The SDK was used against its rules (bad decorator arguments, bad signature, ...)."""

    code = ErrorCode.SDK_USAGE


class InvalidInputError(CoveError):
    """A request's input does not match the application's signature."""

    code = ErrorCode.INVALID_INPUT


class SerializationError(CoveError):
    """A value could not be serialized (not JSON-compatible with its hint, or not picklable)."""

    code = ErrorCode.SERIALIZATION


class DeserializationError(CoveError):
    """Bytes could not be turned back into the value their type hint promises."""

    code = ErrorCode.DESERIALIZATION


class NotFoundError(CoveError):
    """An application, version or request does not exist."""

    code = ErrorCode.APPLICATION_NOT_FOUND


def request_not_found(app: str, request_id: str) -> NotFoundError:
    """The one error for a request id an application does not have (or not visibly)."""
    return NotFoundError(
        f"application {app!r} has no request {request_id!r}",
        code=ErrorCode.REQUEST_NOT_FOUND,
        request_id=request_id,
    )


class DeployError(CoveError):
    """Deploying code failed: it did not import, or its decorators were misused."""

    code = ErrorCode.DEPLOY_FAILED


class ConflictError(CoveError):
    """The operation conflicts with the current state (e.g. idempotency key reuse)."""

    code = ErrorCode.CONFLICT


class RequestNotFinished(CoveError):
    """The request has no output yet."""

    code = ErrorCode.REQUEST_NOT_FINISHED

    def __init__(
        self,
        message: str = "Request is still in progress, its output is not ready yet.",
        **details: Any,
    ) -> None:
        super().__init__(message, **details)


class UnavailableError(CoveError):
    """The server is shutting down or not ready."""

    code = ErrorCode.UNAVAILABLE


class DatabaseUnavailableError(UnavailableError):
    """The database cannot be reached right now (restarting, failing over, cut off): the
    operation was not done; send it again after ``retry_after`` seconds (HTTP 503 with
    ``Retry-After``)."""

    code = ErrorCode.DATABASE_UNAVAILABLE


class PayloadTooLargeError(CoveError):
    """An upload is larger than the server's configured limit (refused before it is stored)."""

    code = ErrorCode.PAYLOAD_TOO_LARGE


class RangeNotSatisfiableError(CoveError):
    """A download's ``Range`` lies outside the output."""

    code = ErrorCode.RANGE_NOT_SATISFIABLE


class AuthenticationError(CoveError):
    """No API key, or one the server does not know (or has revoked)."""

    code = ErrorCode.UNAUTHENTICATED


class ForbiddenError(CoveError):
    """The API key's role does not allow the operation."""

    code = ErrorCode.FORBIDDEN


class BlobMissingError(CoveError, KeyError):
    """A blob the journal refers to (code, a payload, a file) is not in the blob store:
    deleted, or written to another store (replicas each with a local blob folder). Names the
    blob (``key``) and the store (``store``, its URL). Also a KeyError, which is what a blob
    store's readers raised for a missing blob before."""

    code = ErrorCode.BLOB_MISSING

    def __str__(self) -> str:  # the message, not KeyError's quoted repr of it
        return self.message


def blob_missing(key: str, store: str) -> BlobMissingError:
    """The one error for a blob that ``store`` (a blob store URL) does not hold."""
    return BlobMissingError(
        f"blob {key} is missing from the blob store {store}", key=key, store=store
    )


class StorageFullError(CoveError):
    """The server's storage is full: a write to the data folder's file system (the SQLite
    database, a blob, a log or code file) failed with ``ENOSPC``, or the database said it
    is full. Nothing of the operation was kept; it can be sent again once space is freed."""

    code = ErrorCode.STORAGE_FULL


#: SQLite's result code for "database or disk is full" (SQLITE_FULL).
_SQLITE_FULL = 13
#: PostgreSQL's SQLSTATE for disk_full.
_PG_DISK_FULL = "53100"


def storage_full(exc: BaseException | None) -> StorageFullError | None:
    """``exc`` as a :class:`StorageFullError` when it (or an error it was raised from or
    while handling) says the storage is full: ``OSError`` ``ENOSPC``/``EDQUOT``, SQLite's
    ``SQLITE_FULL`` or PostgreSQL's ``disk_full``, also wrapped by SQLAlchemy; else None."""
    import errno

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, StorageFullError):
            return exc
        full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
        full = full or getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL
        full = full or getattr(exc, "sqlstate", None) == _PG_DISK_FULL
        if full or "database or disk is full" in str(exc):
            text = str(exc).strip().splitlines()  # not SQLAlchemy's [SQL: ...] lines
            err = StorageFullError(
                f"the server's storage is full: {text[0] if text else type(exc).__name__}"
            )
            err.__cause__ = exc
            return err
        orig = getattr(exc, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's
        exc = orig if isinstance(orig, BaseException) else (exc.__cause__ or exc.__context__)
    return None


class InternalError(CoveError):
    """A bug or an unexpected failure inside Cove itself."""

    code = ErrorCode.INTERNAL


class FunctionError(CoveError):
    """A function call failed (after its retries). ``function_name`` names the function."""

    code = ErrorCode.FUNCTION_ERROR

    @property
    def function_name(self) -> str | None:
        name = self.details.get("function_name")
        return name if isinstance(name, str) else None


class TimeoutError(FunctionError, builtins.TimeoutError):
    """A function call or a wait ran past its timeout."""

    code = ErrorCode.FUNCTION_TIMEOUT


class RequestFailed(CoveError):
    """A request finished without output: it failed or was cancelled.

    ``str()`` of it is the failure reason (``function_error``, ``function_timeout``,
    ``cancelled``, ...) as in the Tensorlake SDK; ``.message`` keeps the readable text and
    ``.details`` the function, error type and reason.
    """

    code = ErrorCode.REQUEST_FAILED

    def __str__(self) -> str:
        reason = self.details.get("reason")
        return reason if isinstance(reason, str) and reason else self.message


class RequestError(RequestFailed):
    """Raised by user code to fail the whole request at once, without retries.

    The request's caller gets a ``RequestError`` with the same ``.message`` (and ``str()``).
    A calling function may catch it; uncaught, it fails the request.
    """

    code = ErrorCode.REQUEST_ERROR

    def __str__(self) -> str:
        return self.message


class RemoteAPIError(CoveError):
    """A call to a Cove server's HTTP API failed; ``status_code`` is the HTTP status."""

    code = ErrorCode.INTERNAL

    def __init__(self, status_code: int, message: str, **details: Any) -> None:
        super().__init__(message, status_code=status_code, **details)

    @property
    def status_code(self) -> int:
        return int(self.details.get("status_code", 0))

    def __str__(self) -> str:
        return f"{self.message} (Status Code: {self.status_code})"


# The Tensorlake SDK's names for the base of its errors: Cove's base error is both.
TensorlakeException = CoveError
TensorlakeError = CoveError


_BY_CODE: dict[str, type[CoveError]] = {
    ErrorCode.SDK_USAGE.value: SDKUsageError,
    ErrorCode.INVALID_INPUT.value: InvalidInputError,
    ErrorCode.SERIALIZATION.value: SerializationError,
    ErrorCode.DESERIALIZATION.value: DeserializationError,
    ErrorCode.APPLICATION_NOT_FOUND.value: NotFoundError,
    ErrorCode.REQUEST_NOT_FOUND.value: NotFoundError,
    ErrorCode.DEPLOY_FAILED.value: DeployError,
    ErrorCode.CONFLICT.value: ConflictError,
    ErrorCode.REQUEST_NOT_FINISHED.value: RequestNotFinished,
    ErrorCode.REQUEST_FAILED.value: RequestFailed,
    ErrorCode.REQUEST_ERROR.value: RequestError,
    ErrorCode.FUNCTION_ERROR.value: RequestFailed,
    ErrorCode.FUNCTION_TIMEOUT.value: RequestFailed,
    ErrorCode.CANCELLED.value: RequestFailed,
    ErrorCode.UNAVAILABLE.value: UnavailableError,
    ErrorCode.DATABASE_UNAVAILABLE.value: DatabaseUnavailableError,
    ErrorCode.INTERNAL.value: InternalError,
    ErrorCode.UNAUTHENTICATED.value: AuthenticationError,
    ErrorCode.FORBIDDEN.value: ForbiddenError,
    ErrorCode.BLOB_MISSING.value: BlobMissingError,
    ErrorCode.STORAGE_FULL.value: StorageFullError,
}


def error_from_dict(data: dict[str, Any]) -> CoveError:
    """Rebuild an error from its JSON form (as the HTTP API sends it)."""
    code = str(data.get("code", ErrorCode.INTERNAL.value))
    cls = _BY_CODE.get(code, InternalError)
    details = {k: v for k, v in data.items() if k not in ("code", "message")}
    try:
        err_code = ErrorCode(code)
    except ValueError:
        err_code = ErrorCode.INTERNAL
    message = str(data.get("message", ""))
    if cls is RequestFailed and details.get("reason") == "request_error":
        # The request failed with a RequestError: the caller gets one with its own message
        # (the server's text is "request <id> failed: <message>").
        prefix = f"request {details.get('request_id')} failed: "
        cls, err_code = RequestError, ErrorCode.REQUEST_ERROR
        message = message[len(prefix) :] if message.startswith(prefix) else message
    return cls(message, code=err_code, **details)
