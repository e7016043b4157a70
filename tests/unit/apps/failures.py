"""Failures: child errors, RequestError, retries."""

import threading
from typing import Any

from cove import FunctionError, RequestError, Retries, application, function

_lock = threading.Lock()
ATTEMPTS: dict[str, int] = {}


def reset() -> None:
    with _lock:
        ATTEMPTS.clear()


def _attempt(key: str) -> int:
    with _lock:
        ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
        return ATTEMPTS[key]


@function()
def boom(x: int) -> int:
    raise ValueError(f"boom {x}")


@application()
@function()
def handles_child_failure(x: int) -> dict[str, Any]:
    try:
        boom(x)
    except FunctionError as exc:
        return {
            "function_name": exc.function_name,
            "message": exc.message,
            "error_type": exc.details.get("error_type"),
        }
    return {"function_name": None}


@application()
@function()
def uncaught_child_failure(x: int) -> int:
    return boom(x) + 1


@application()
@function()
def fails_itself() -> int:
    raise KeyError("mine")


@function(retries=Retries(max_retries=3, initial_delay=0))
def refuses(key: str) -> str:
    _attempt(key)
    raise RequestError(f"invalid input {key}")


@application()
@function()
def request_error_in_child(key: str) -> str:
    try:
        return refuses(key)
    except FunctionError:
        return "caught as FunctionError"


@application()
@function()
def request_error_swallowed(key: str) -> str:
    try:
        return refuses(key)
    except Exception:
        return "swallowed"


@application(retries=Retries(max_retries=3, initial_delay=0))
@function()
def request_error_in_app(key: str) -> str:
    _attempt(key)
    raise RequestError("bad request")


def _flaky(key: str, failures: int) -> str:
    n = _attempt(key)
    if n <= failures:
        raise ConnectionError(f"attempt {n} failed")
    return f"ok after {n}"


@function(retries=Retries(max_retries=3, initial_delay=0))
def flaky_3(key: str, failures: int) -> str:
    return _flaky(key, failures)


@function(retries=Retries(max_retries=1, initial_delay=0))
def flaky_1(key: str, failures: int) -> str:
    return _flaky(key, failures)


@function()
def flaky_default(key: str, failures: int) -> str:
    return _flaky(key, failures)


@application()
@function()
def call_flaky_3(key: str, failures: int) -> str:
    return flaky_3(key, failures)


@application()
@function()
def call_flaky_1(key: str, failures: int) -> str:
    return flaky_1(key, failures)


@application()
@function()
def call_flaky_default(key: str, failures: int) -> str:
    return flaky_default(key, failures)


@application(retries=Retries(max_retries=2, initial_delay=0))
@function()
def inherits_app_retries(key: str, failures: int) -> str:
    return flaky_default(key, failures)
