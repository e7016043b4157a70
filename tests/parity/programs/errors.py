"""Failures: RequestError, ordinary exceptions, caught child failures, retries, sync and async."""

from tensorlake.applications import (
    FunctionError,
    RequestContext,
    RequestError,
    Retries,
    application,
    function,
)


@function()
def fails(x: int) -> int:
    raise ValueError(f"bad {x}")


@function()
def request_error_child(x: int) -> int:
    raise RequestError(f"child says no {x}")


@function(retries=Retries(max_retries=2))
def flaky(marker: str) -> str:
    ctx = RequestContext.get()
    attempts = (ctx.state.get(marker) or 0) + 1
    ctx.state.set(marker, attempts)
    if attempts < 3:
        raise ValueError(f"attempt {attempts}")
    return f"succeeded on attempt {attempts}"


@function(retries=Retries(max_retries=1))
def always_fails(x: int) -> int:
    raise ValueError("never")


@function(retries=Retries(max_retries=1))
def mutates(items: list) -> int:
    ctx = RequestContext.get()
    attempts = (ctx.state.get("mutates") or 0) + 1
    ctx.state.set("mutates", attempts)
    items.append("x")
    if attempts == 1:
        raise ValueError("first attempt fails")
    return len(items)


@application()
@function()
def app_request_error(x: int) -> int:
    raise RequestError("m")


@application()
@function()
def app_value_error(x: int) -> int:
    raise ValueError("plain")


@application()
@function()
def child_value_error(x: int) -> int:
    return fails(x)


@application()
@function()
def child_request_error(x: int) -> int:
    return request_error_child(x)


@application()
@function()
def catches_child_failure(x: int) -> str:
    try:
        fails(x)
    except FunctionError as exc:
        return type(exc).__name__
    return "not raised"


@application()
@function()
def catches_child_request_error(x: int) -> str:
    try:
        request_error_child(x)
    except RequestError as exc:
        return f"{type(exc).__name__}: {exc.message}"
    return "not raised"


@application()
@function()
def retried(x: int) -> str:
    return flaky("flaky")


@application()
@function()
def retries_exhausted(x: int) -> int:
    return always_fails(x)


@application()
@function()
def retried_mutation(x: int) -> int:
    return mutates([1])


@application(retries=Retries(max_retries=2))
@function()
def app_retried(x: int) -> int:
    ctx = RequestContext.get()
    attempts = (ctx.state.get("app") or 0) + 1
    ctx.state.set("app", attempts)
    if attempts < 2:
        raise ValueError("once")
    return attempts


@function()
async def afails(x: int) -> int:
    raise ValueError("async bad")


@application()
@function()
async def async_child_failure(x: int) -> str:
    try:
        await afails(x)
    except FunctionError as exc:
        return type(exc).__name__
    return "not raised"


@application()
@function()
async def async_request_error(x: int) -> int:
    raise RequestError("async m")


CASES = [
    {"name": "request_error", "app": "app_request_error", "args": [1]},
    {"name": "ordinary_exception", "app": "app_value_error", "args": [1]},
    {"name": "child_ordinary_exception", "app": "child_value_error", "args": [1]},
    {"name": "child_request_error", "app": "child_request_error", "args": [1]},
    {"name": "caught_function_error", "app": "catches_child_failure", "args": [1]},
    {"name": "caught_request_error", "app": "catches_child_request_error", "args": [1]},
    {"name": "retries_succeed", "app": "retried", "args": [1]},
    {"name": "retries_exhausted", "app": "retries_exhausted", "args": [1]},
    {"name": "retry_gets_fresh_argument", "app": "retried_mutation", "args": [1]},
    {"name": "application_retries", "app": "app_retried", "args": [1]},
    {"name": "async_caught_function_error", "app": "async_child_failure", "args": [1]},
    {"name": "async_request_error", "app": "async_request_error", "args": [1]},
]
