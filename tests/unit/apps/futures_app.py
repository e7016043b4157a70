"""Applications exercising Future: run/result/done/wait."""

import time
from typing import Any

import cove
from cove import RETURN_WHEN, Future, application, function


@function()
def fast(x: int) -> int:
    return x


@function()
def slow(x: int) -> int:
    time.sleep(0.3)
    return x


@function()
def fails(x: int) -> int:
    raise ValueError(f"fails({x})")


@application()
@function()
def run_and_result() -> dict[str, Any]:
    fut = fast.future(3)
    before = fut.done()
    started = fut.run() is fut
    value = fut.result()
    return {"before": before, "started": started, "value": value, "after": fut.done()}


@application()
@function()
def first_completed() -> dict[str, Any]:
    quick, lazy = fast.future(1), slow.future(2)
    done, pending = Future.wait([lazy, quick], return_when=RETURN_WHEN.FIRST_COMPLETED)
    out = {
        "done": [f.result() for f in done],
        "pending": len(pending),
        "pending_is_lazy": pending == [lazy],
    }
    out["lazy"] = lazy.result()  # drain: no call outlives the request
    return out


@application()
@function()
def all_completed() -> dict[str, Any]:
    futs = [slow.future(1), fast.future(2), fast.future(3)]
    done, pending = Future.wait(futs)  # ALL_COMPLETED is the default
    done2, pending2 = Future.wait(futs, return_when=RETURN_WHEN.ALL_COMPLETED)
    return {
        "done": [f.result() for f in done],
        "pending": len(pending),
        "done2": len(done2),
        "pending2": len(pending2),
    }


@application()
@function()
def first_failure() -> dict[str, Any]:
    bad, lazy = fails.future(1), slow.future(2)
    done, pending = Future.wait([lazy, bad], return_when=RETURN_WHEN.FIRST_FAILURE)
    err = bad.exception
    out = {
        "done_is_bad": done == [bad],
        "pending_is_lazy": pending == [lazy],
        "error_type": type(err).__name__,
        "error_function": getattr(err, "function_name", None),
    }
    out["lazy"] = lazy.result()
    return out


@application()
@function()
def first_failure_none_fail() -> dict[str, Any]:
    # Without any failure FIRST_FAILURE waits for all.
    futs = [fast.future(1), slow.future(2)]
    done, pending = Future.wait(futs, return_when=RETURN_WHEN.FIRST_FAILURE)
    return {"done": len(done), "pending": len(pending)}


@application()
@function()
def wait_timeout() -> dict[str, Any]:
    # A wait that times out settles the futures it waited for with a TimeoutError.
    lazy = slow.future(5)
    t0 = time.monotonic()
    done, pending = Future.wait([lazy], timeout=0.05)
    waited = time.monotonic() - t0
    timed_out = None
    try:
        slow.future(6).result(timeout=0.01)
    except cove.TimeoutError as exc:
        timed_out = {
            "builtin": isinstance(exc, TimeoutError),
            "function_error": isinstance(exc, cove.FunctionError),
            "function_name": exc.function_name,
        }
    again = None
    try:
        lazy.result()
    except cove.TimeoutError as exc:
        again = exc is lazy.exception
    return {
        "done": done == [lazy],
        "pending": len(pending),
        "waited_short": waited < 0.25,
        "timed_out": timed_out,
        "exception": type(lazy.exception).__name__,
        "result_raises_it": again,
    }


@application()
@function()
def failed_result() -> str:
    try:
        fails.future(9).result()
    except cove.FunctionError as exc:
        return f"{exc.function_name}: {exc.message}"
    return "no error"


@function()
def straggler(x: int) -> int:
    time.sleep(0.8)
    return x


@application()
@function()
def leaves_straggler() -> str:
    straggler.future(1).run()  # started, never awaited: still running after the request returns
    return "done"


@application()
@function()
def map_with_failure(xs: list[int]) -> str:
    try:
        fails.map(xs)
    except cove.FunctionError as exc:
        return f"{exc.function_name}: {exc.message}"
    return "no error"
