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

from cove.engine.failures import request_error
from cove.errors import (
    CoveError,
    FunctionError,
    RequestError,
    RequestFailed,
    SDKUsageError,
    SerializationError,
)
from cove.sdk.codec import (
    Signature,
    application_signature,
    decode_arguments,
    dumps,
    encode_output,
    json_argument,
    loads,
)
from cove.sdk.context import CallScope, CallSpec, local_request
from cove.sdk.decorators import check_complete, find_function, registered_functions
from cove.sdk.execution import Failure, TailCall, classify, run_body
from cove.sdk.file import File
from cove.sdk.function import Function
from cove.sdk.http import HttpBody
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
        # Each attempt gets its own copy of the arguments (on a server each attempt unpickles
        # them afresh), so a body that mutated them does not hand the mutation to its retry.
        payload = dumps((args, kwargs), f"arguments of {fn.name}") if policy.max_retries else b""
        attempt = 0
        while True:
            attempt += 1
            if attempt > 1:
                args, kwargs = loads(payload, f"arguments of {fn.name}")
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
                            failure.message,
                            function_name=failure.function_name,
                            reason="request_error",
                        )
                    raise self.request_error from None
                if failure.retryable() and attempt <= policy.max_retries:
                    time.sleep(policy.delay(attempt))
                    continue
                raise _function_error(failure) from None


def _function_error(failure: Failure) -> FunctionError:
    extra: dict[str, Any] = {"cause": failure.cause} if failure.reason == "child_failed" else {}
    return FunctionError(
        failure.message,
        function_name=failure.function_name,
        error_type=failure.error_type,
        reason=failure.reason,
        **extra,
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

    ``app`` is the application function or its name. Inputs are converted to JSON and back
    through the application's type hints, exactly as an HTTP request's would be (a value
    that does not fit its parameter's hint raises :class:`SerializationError` here), and so
    is the output. Positional arguments beyond the parameters, and keyword arguments that
    name none, are ignored, as a request's unknown inputs are.
    """
    fn = application_function(app)
    sig = application_signature(fn)
    names = [p.name for p in sig.parameters]
    values: dict[str, Any] = dict(zip(names, args, strict=False))
    values.update((k, v) for k, v in kwargs.items() if k in names)
    json_values = {k: _to_json(sig, k, v) for k, v in values.items()}
    request_id = uuid.uuid4().hex
    with local_request():
        return _run_request(fn, sig, json_values, request_id)


def _run_request(
    fn: Function, sig: Signature, json_values: dict[str, Any], request_id: str
) -> Request:
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
    except RequestError as exc:
        return LocalRequest(request_id, None, exc)
    except CoveError as exc:
        details = dict(exc.details)
        cause = details.pop("cause", None)
        if "reason" in details:  # the request's reason, as a server gives it
            details["reason"] = request_error({**details, "cause": cause})["reason"]
        failed = RequestFailed(exc.message, code=exc.code, **details)
        return LocalRequest(request_id, None, failed)


def application_function(app: Function | str) -> Function:
    """The application ``app`` names (a function or its name), or :class:`SDKUsageError`."""
    if isinstance(app, str):
        found = find_function(app)
        if found is None:
            raise SDKUsageError(f"Function with name '{app}' is not defined")
        app = found
    if not isinstance(app, Function):
        raise SDKUsageError(f"{app!r} is not a Cove function and cannot be run as an application")
    check_complete(app)
    if app.application is None:
        raise SDKUsageError(not_an_application(app.name))
    return app


def not_an_application(name: str) -> str:
    """The Tensorlake SDK's words for running a function that is not an application."""
    return (
        f"Tensorlake Function '{name}' is not an application function and cannot be run as "
        "an application. To make it an application function, add @application() decorator "
        "to it."
    )


def _to_json(sig: Any, name: str, value: Any) -> Any:
    """What an HTTP client would send for ``value``: its JSON form (Files as they are)."""
    import json

    import pydantic

    if isinstance(value, File | HttpBody):
        return value
    for p in sig.parameters:
        if p.name == name and p.adapter is not None:
            return json_argument(sig.function_name, p.name, p.hint, p.adapter, value)
    return json.loads(pydantic.TypeAdapter(Any).dump_json(value))
