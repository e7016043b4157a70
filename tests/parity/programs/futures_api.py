"""The Future API's edges: run_later, a second run(), wait's checks, timeouts, tail calls of
started calls, a Function as an argument. Each application reports what it saw."""

import time

from tensorlake.applications import Future, application, function


def outcome(thunk) -> str:
    try:
        return f"ok {thunk()!r}"
    except Exception as exc:
        return type(exc).__name__


@function()
def double(x: int) -> int:
    return x * 2


@function()
def slow(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


@function()
def echo(value) -> str:
    return type(value).__name__


@application()
@function()
def run_later_valid(x: int) -> int:
    return double.future(x).run_later(0.2).result()


@application()
@function()
def run_later_invalid(x: int) -> list[str]:
    return [
        outcome(lambda: double.future(x).run_later(-1)),
        outcome(lambda: double.future(x).run_later(float("inf"))),
        outcome(lambda: double.future(x).run_later("soon")),
    ]


@application()
@function()
def second_run(x: int) -> list[str]:
    future = double.future(x).run()
    again = outcome(future.run)
    return [again, outcome(future.result)]


@application()
@function()
def wait_bad_arguments(x: int) -> list[str]:
    return [
        outcome(lambda: Future.wait([double.future(x)], return_when="wrong")),
        outcome(lambda: Future.wait([double.future(x)], timeout=-1)),
        outcome(lambda: Future.wait([x])),
    ]


@application()
@function()
def after_result_timeout(seconds: float) -> dict:
    future = slow.future(seconds)
    raised = outcome(lambda: future.result(timeout=0.1))
    exception = future.exception
    return {
        "raised": raised,
        "done": future.done(),
        "exception": type(exception).__name__,
        "exception_is_callable": callable(exception),
    }


@application()
@function()
def after_wait_timeout(seconds: float) -> dict:
    future = slow.future(seconds)
    done, not_done = Future.wait([future], timeout=0.1)
    return {"done": len(done), "not_done": len(not_done)}


@application()
@function()
def returns_running_future(x: int) -> int:
    return double.future(x).run()


@application()
@function()
def function_as_argument(x: int) -> str:
    return outcome(lambda: echo(double))


@application()
@function()
def done_before_and_after(x: int) -> list[bool]:
    future = double.future(x)
    before = future.done()
    future.result()
    return [before, future.done()]


CASES = [
    {"name": "run_later_valid", "app": "run_later_valid", "args": [4]},
    {"name": "run_later_invalid_delays", "app": "run_later_invalid", "args": [4]},
    {"name": "second_run", "app": "second_run", "args": [4]},
    {"name": "wait_bad_arguments", "app": "wait_bad_arguments", "args": [4]},
    {"name": "after_result_timeout", "app": "after_result_timeout", "args": [3.0]},
    {"name": "after_wait_timeout", "app": "after_wait_timeout", "args": [3.0]},
    {"name": "tail_call_of_running_future", "app": "returns_running_future", "args": [4]},
    {"name": "function_as_call_argument", "app": "function_as_argument", "args": [1]},
    {"name": "done", "app": "done_before_and_after", "args": [2]},
]
