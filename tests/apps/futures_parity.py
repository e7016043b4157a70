"""Futures and async functions as the Tensorlake SDK defines them (issue 15 §2): Futures as
arguments and collections, awaitable async map/reduce, real coroutines, ``coroutine()``,
``run_later``, usage errors, timeouts, tail calls of started Futures, Functions as arguments
and SDK calls from threads the user starts."""

import asyncio
import threading
import time
from typing import Any

import cove
from cove import RETURN_WHEN, Future, RequestContext, application, function


@function()
def add(a: int, b: int) -> int:
    return a + b


@function()
def to_str(x: int) -> str:
    return str(x)


@function()
def to_int(s: str) -> int:
    return int(s) * 10


@function()
def rng(n: int) -> list[int]:
    return list(range(n))


@function()
def takes_any(x: Any) -> str:
    return repr(x)


@function()
def slow(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@function()
def call_id(_: Any = None) -> list[Any]:
    return [_, RequestContext.get().function_call_id]


@function()
async def adouble(x: int) -> int:
    await asyncio.sleep(0.01)
    return 2 * x


@function()
async def aadd(a: int, b: int) -> int:
    return a + b


def _error(work: Any) -> list[str]:
    try:
        work()
    except cove.CoveError as exc:
        return [type(exc).__name__, exc.message]
    return ["no error", ""]


@application()
@function()
def future_arguments(x: int) -> int:
    return add(add.future(x, 1), add.future(x, 2))


@application()
@function()
def future_collections(n: int) -> dict[str, Any]:
    return {
        "map_of_map": to_int.future.map(to_str.future.map(list(range(n)))).result(),
        "map_sync": to_int.map(to_str.future.map(list(range(n)))),
        "reduce": add.reduce(rng.future(n), 100),
        "items": to_int.map([to_str.future(1), to_str.future(2)]),
        "kwargs": add(a=add.future(1, 1), b=add.future(2, 2)),
        "initial": add.reduce([add.future(1, 1), 5], add.future(0, 1)),
    }


@application()
@function()
def future_ids(_: int) -> dict[str, Any]:
    # A Future argument keeps the position it was created at; its consumer takes its own.
    first = call_id.future()
    second = call_id.future(first)
    third = call_id()
    return {"second": second.result(), "third": third}


@application()
@function()
def not_picklable(_: int) -> dict[str, list[str]]:
    return {
        "future_in_list": _error(lambda: takes_any([add.future(1, 1)])),
        "function": _error(lambda: takes_any(to_str)),
    }


@application()
@function()
async def async_calls(x: int) -> dict[str, Any]:
    out: dict[str, Any] = {"map": await adouble.map([1, 2]), "reduce": await aadd.reduce([1, 2], x)}
    call = adouble(x)
    out["is_coroutine"] = asyncio.iscoroutine(call)
    out["task"] = await asyncio.create_task(call)
    out["gather"] = await asyncio.gather(adouble(1), adouble(2))
    fut = adouble.future(5)
    coroutine = fut.coroutine()
    out["same_coroutine"] = coroutine is fut.coroutine()
    out["coroutine"] = await coroutine
    out["coroutine_arg"] = await add.future(adouble(3), 1)
    out["awaited_map_of_map"] = await to_int.future.map(to_str.future.map([1, 2]))
    return out


@application()
@function()
async def returns_async_map(x: int) -> list[int]:
    return adouble.map([x, x + 1])  # type: ignore[no-any-return]


@application()
@function()
def usage_errors(_: int) -> dict[str, list[str]]:
    started = add.future(1, 2).run()
    started.result()
    later = add.future(1, 2)
    return {
        "second_run": _error(started.run),
        "return_when": _error(
            lambda: Future.wait([add.future(1, 1)], return_when="wrong")  # type: ignore[arg-type]
        ),
        "negative_timeout": _error(lambda: Future.wait([add.future(1, 1)], timeout=-1)),
        "not_a_future": _error(lambda: Future.wait([3])),  # type: ignore[list-item]
        "negative_delay": _error(lambda: later.run_later(-1)),
        "infinite_delay": _error(lambda: later.run_later(float("inf"))),
        "bool_delay": _error(lambda: later.run_later(True)),
        "coroutine_in_sync_code": _error(lambda: add.future(1, 1).coroutine()),
        "later_not_started": [str(later.done())],
    }


@application()
@function()
def run_later(delay: float) -> dict[str, Any]:
    t0 = time.monotonic()
    fut = add.future(1, 2).run_later(delay)
    value = fut.result()
    return {"value": value, "waited": time.monotonic() - t0 >= delay}


@application()
@function()
def timeouts(_: int) -> dict[str, Any]:
    lazy = slow.future(3)
    out: dict[str, Any] = {"result": _error(lambda: lazy.result(timeout=0.05))}
    out["done"] = lazy.done()
    out["exception"] = type(lazy.exception).__name__
    out["again"] = _error(lazy.result)
    other, quick = slow.future(3), add.future(1, 1)
    done, pending = Future.wait(
        [other, quick], timeout=2.5, return_when=RETURN_WHEN.FIRST_COMPLETED
    )
    out["wait"] = [len(done), len(pending), type(other.exception).__name__]
    return out


@application()
@function()
def tail_of_started(x: int) -> int:
    fut = add.future(x, 1)
    fut.run()
    return fut  # type: ignore[return-value]


@application()
@function()
def tail_with_future_argument(x: int) -> int:
    return add.future(add.future(x, 1), 3)  # type: ignore[return-value]


@application()
@function()
def user_thread(_: int) -> list[Any]:
    out: list[Any] = []

    def work() -> None:
        try:
            out.append(["ok", add.future(1, 2).run().result()])
        except cove.CoveError as exc:
            out.append([type(exc).__name__, exc.message])

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return out
