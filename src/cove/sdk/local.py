"""``run_local_application``: the programming model in one process, for tests and development.

Same semantics as a server (JSON edge by type hints, pickled values between calls, durable
call ids, retries, state, tail calls, error types) without containers or a journal.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import Future as ConcurrentFuture
from typing import Any

from cove.errors import (
    CoveError,
    FunctionError,
    RequestError,
    RequestFailed,
    SDKUsageError,
    SerializationError,
)
from cove.sdk.codec import application_signature, decode_arguments, dumps, encode_output, loads
from cove.sdk.context import CallScope, CallSpec
from cove.sdk.decorators import registered_functions
from cove.sdk.execution import Failure, TailCall, classify, run_body
from cove.sdk.file import File
from cove.sdk.function import Function
from cove.sdk.request import Request
from cove.sdk.retries import Retries


class LocalBackend:
    """Runs every call in a thread of this process."""

    def __init__(self, app: Function, request_id: str) -> None:
        self.app = app
        self.request_id = request_id
        self.functions = registered_functions(app.module)
        self.state: dict[str, bytes] = {}
        self.progress_updates: list[tuple[str, float, float, str | None]] = []
        self.metrics: list[tuple[str, str, float]] = []
        self._lock = threading.Lock()
        self.request_error: RequestError | None = None

    # -- Backend protocol ---------------------------------------------------------------
    def start_calls(self, scope: CallScope, specs: list[CallSpec]) -> list[ConcurrentFuture[Any]]:
        outcomes = []
        for spec in specs:
            payload = dumps((spec.args, spec.kwargs), f"arguments of {spec.function_name}")
            outcome: ConcurrentFuture[Any] = ConcurrentFuture()
            threading.Thread(
                target=self._run_child, args=(spec, payload, outcome), daemon=True
            ).start()
            outcomes.append(outcome)
        return outcomes

    def state_get(self, scope: CallScope, key: str) -> tuple[bool, Any]:
        with self._lock:
            data = self.state.get(key)
        return (False, None) if data is None else (True, loads(data, f"state '{key}'"))

    def state_set(self, scope: CallScope, key: str, value: Any) -> None:
        data = dumps(value, f"state value for '{key}'")
        with self._lock:
            self.state[key] = data

    def progress(self, scope: CallScope, current: float, total: float, message: str | None) -> None:
        with self._lock:
            self.progress_updates.append((scope.call_id, current, total, message))

    def metric(self, scope: CallScope, kind: str, name: str, value: float) -> None:
        with self._lock:
            self.metrics.append((kind, name, value))

    # -- running ------------------------------------------------------------------------
    def _function(self, name: str) -> Function:
        fn = self.functions.get(name)
        if fn is None:
            raise SDKUsageError(f"function {name} is not defined in module {self.app.module}")
        return fn

    def _retries(self, fn: Function) -> Retries:
        if fn.config.retries is not None:
            return fn.config.retries
        assert self.app.application is not None
        return self.app.application.retries

    def _run_child(self, spec: CallSpec, payload: bytes, outcome: ConcurrentFuture[Any]) -> None:
        try:
            args, kwargs = loads(payload, f"arguments of {spec.function_name}")
            value = self.run_call(spec.call_id, self._function(spec.function_name), args, kwargs)
            # Values cross a process boundary on a server: mimic it.
            outcome.set_result(loads(dumps(value, f"output of {spec.function_name}"), "output"))
        except BaseException as exc:
            outcome.set_exception(exc)

    def run_call(
        self, call_id: str, fn: Function, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Run one call with its retry policy; raises the error its caller would see."""
        policy = self._retries(fn)
        attempt = 0
        while True:
            attempt += 1
            scope = CallScope(self.request_id, call_id, fn.name, self)
            try:
                result = run_body(fn, scope, args, kwargs)
                if isinstance(result, TailCall):
                    tail = result.spec
                    return self.run_call(
                        tail.call_id, self._function(tail.function_name), tail.args, tail.kwargs
                    )
                return result
            except BaseException as exc:
                failure = classify(fn.name, exc)
                if failure.reason == "request_error":
                    with self._lock:
                        self.request_error = self.request_error or RequestError(
                            failure.message, function_name=failure.function_name
                        )
                    raise self.request_error from None
                if failure.retryable() and attempt <= policy.max_retries:
                    time.sleep(policy.delay(attempt))
                    continue
                raise _function_error(failure) from None


def _function_error(failure: Failure) -> FunctionError:
    return FunctionError(
        failure.message,
        function_name=failure.function_name,
        error_type=failure.error_type,
        reason=failure.reason,
    )


class LocalRequest(Request):
    """A request run by :func:`run_local_application`; it has finished when returned."""

    def __init__(self, request_id: str, output: Any, error: CoveError | None) -> None:
        self._id = request_id
        self._output = output
        self._error = error

    @property
    def id(self) -> str:
        return self._id

    def output(self, timeout: float | None = None) -> Any:
        if self._error is not None:
            raise self._error
        return self._output


def run_local_application(app: Function | str, *args: Any, **kwargs: Any) -> Request:
    """Run an application in this process and return its finished :class:`Request`.

    Inputs are converted to JSON and back through the application's type hints, exactly
    as an HTTP request's would be, and so is the output.
    """
    fn = app if isinstance(app, Function) else None
    if fn is None or fn.application is None:
        raise SDKUsageError(f"run_local_application needs an @application function, got {app!r}")
    sig = application_signature(fn)
    names = [p.name for p in sig.parameters]
    if len(args) > len(names):
        raise SDKUsageError(
            f"application {fn.name} takes {len(names)} argument(s), {len(args)} were given"
        )
    values: dict[str, Any] = dict(zip(names, args, strict=False))
    values.update(kwargs)
    json_values = {k: _to_json(sig, k, v) for k, v in values.items()}
    request_id = uuid.uuid4().hex
    backend = LocalBackend(fn, request_id)
    try:
        call_kwargs = decode_arguments(sig, json_values)
        value = backend.run_call("0", fn, (), call_kwargs)
        if backend.request_error is not None:  # raised below, swallowed by a parent
            raise backend.request_error
        try:
            body, content_type = encode_output(sig, value)
        except SerializationError as exc:  # the application's own failure, as on a server
            raise _function_error(classify(fn.name, exc)) from None
        if sig.returns_file or content_type != "application/json":
            return LocalRequest(request_id, File(body, content_type), None)
        return LocalRequest(request_id, sig.return_adapter.validate_json(body), None)
    except CoveError as exc:
        failed = RequestFailed(exc.message, code=exc.code, **{k: v for k, v in exc.details.items()})
        return LocalRequest(request_id, None, failed)


def _to_json(sig: Any, name: str, value: Any) -> Any:
    """What an HTTP client would send for ``value``: its JSON form (Files as they are)."""
    import json

    import pydantic

    if isinstance(value, File):
        return value
    for p in sig.parameters:
        if p.name == name and p.adapter is not None:
            return json.loads(p.adapter.dump_json(value, warnings=False))
    return json.loads(pydantic.TypeAdapter(Any).dump_json(value))
