"""Running one function call's body: shared by the container worker and the local runner."""

from __future__ import annotations

import asyncio
import traceback
from dataclasses import dataclass
from typing import Any

from cove.errors import BlobMissingError, CoveError, FunctionError, RequestError, SDKUsageError
from cove.sdk.context import CallScope, CallSpec, enter_scope, exit_scope
from cove.sdk.decorators import instance_of
from cove.sdk.function import Function
from cove.sdk.future import Future, unwrap


@dataclass
class TailCall:
    """The body returned an unstarted Future: its call's output becomes this call's output."""

    spec: CallSpec


@dataclass
class Failure:
    """Why a call's body failed, in a form that crosses processes.

    ``reason`` is ``function_error`` (retryable), ``request_error`` (fails the request at
    once), ``blob_missing`` (a ``File`` whose blob the store lacks; not retried) or
    ``child_failed`` (an uncaught failure of a child; retrying would fail again).
    """

    reason: str
    function_name: str
    message: str
    error_type: str
    traceback: str
    cause: str | None = None  # for child_failed: the child's own reason

    def to_dict(self) -> dict[str, Any]:
        return {
            "cause": self.cause,
            "reason": self.reason,
            "function_name": self.function_name,
            "message": self.message,
            "error_type": self.error_type,
            "traceback": self.traceback,
        }

    def retryable(self) -> bool:
        return self.reason == "function_error"


def classify(function_name: str, exc: BaseException) -> Failure:
    """Turn an exception raised by a body into a :class:`Failure`."""
    tb = "".join(traceback.format_exception(exc))
    if isinstance(exc, RequestError):
        return Failure("request_error", function_name, exc.message, "RequestError", tb)
    if isinstance(exc, FunctionError):
        # A child's failure the body did not handle: name the child that failed.
        return Failure(
            "child_failed",
            exc.function_name or function_name,
            exc.message,
            str(exc.details.get("error_type", type(exc).__name__)),
            tb,
            cause=str(exc.details.get("reason") or exc.code.value),
        )
    if isinstance(exc, BlobMissingError):  # a File whose blob the store lacks: no retry helps
        return Failure("blob_missing", function_name, exc.message, "BlobMissingError", tb)
    message = exc.message if isinstance(exc, CoveError) else str(exc)
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return Failure("function_error", function_name, text, type(exc).__name__, tb)


def run_body(fn: Function, scope: CallScope, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run ``fn``'s body under ``scope``. Returns its value, or a :class:`TailCall`.

    An ``async def`` body gets an event loop of its own here (the local runner's way); a
    container runs them all on one loop with :func:`run_body_async`."""
    if fn.is_async:
        result = asyncio.run(_scoped(fn, scope, args, kwargs))
    else:
        call_args = (instance_of(fn.cls), *args) if fn.cls is not None else args
        token = enter_scope(scope)
        try:
            result = fn.fn(*call_args, **kwargs)
        finally:
            exit_scope(scope, token)
    future = _returned_future(fn, result)
    if future is None:
        return result
    spec = future.tail_call_spec()
    if spec is not None:
        return TailCall(spec)
    future.ensure_started()  # a map or reduce: it runs here, its value is the output
    return future.settled().result()


async def run_body_async(
    fn: Function, scope: CallScope, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Run an ``async def`` body on the running loop, beside the container's other calls."""
    result = await _scoped(fn, scope, args, kwargs)
    future = _returned_future(fn, result)
    if future is None:
        return result
    for dep in future.dependencies():  # awaited here, not blocking the loop
        dep.ensure_started()
        await asyncio.wrap_future(_copy_of(dep))
    spec = future.tail_call_spec()
    if spec is not None:
        return TailCall(spec)
    future.ensure_started()
    return await asyncio.wrap_future(_copy_of(future))


def _returned_future(fn: Function, result: Any) -> Future | None:
    """The Future a body returned (itself, or the coroutine of an async function's call);
    one that was started already cannot be a tail call."""
    future = unwrap(result)
    if not isinstance(future, Future):
        return None
    running = future.started_in_tree()
    if running is not None:
        raise SDKUsageError(
            f"A tail call Future {running} returned from function '{fn.name}' is already "
            "running, a tail call Future should not be started."
        )
    if future is not result and asyncio.iscoroutine(result):
        result.close()  # never awaited: the Future it stands for runs instead
    return future


def _copy_of(future: Future) -> Any:
    """A concurrent future settled like ``future``'s outcome (awaiting it through asyncio
    must not cancel the outcome itself)."""
    from concurrent.futures import Future as ConcurrentFuture

    copy: ConcurrentFuture[Any] = ConcurrentFuture()

    def settle(done: ConcurrentFuture[Any]) -> None:
        exc = done.exception()
        if exc is not None:
            copy.set_exception(exc)
        else:
            copy.set_result(done.result())

    future.settled().add_done_callback(settle)
    return copy


async def _scoped(
    fn: Function, scope: CallScope, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    call_args = (instance_of(fn.cls), *args) if fn.cls is not None else args
    token = enter_scope(scope)
    try:
        return await fn.fn(*call_args, **kwargs)
    finally:
        exit_scope(scope, token)
