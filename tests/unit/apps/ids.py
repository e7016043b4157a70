"""Durable call ids: children report RequestContext.get().function_call_id."""

import threading
import time
from typing import Any

from cove import RequestContext, Retries, application, function


def my_id() -> str:
    return RequestContext.get().function_call_id


@function()
def record() -> str:
    return my_id()


@function()
def record_item(i: int) -> list[Any]:
    # Later items finish first: ids must follow item index, not completion order.
    time.sleep(0.02 * (4 - i))
    return [i, my_id()]


@function()
def record_fold(acc: list[str], item: int) -> list[str]:
    return [*acc, f"{item}@{my_id()}"]


@function()
def record_nested() -> list[str]:
    return [my_id(), record(), record()]


@application()
@function()
def ids() -> dict[str, Any]:
    out: dict[str, Any] = {"self": my_id()}
    out["direct"] = record()  # position 0
    b = record.future()  # position 1 (taken at creation)
    c = record.future()  # position 2
    out["c_first"] = c.result()
    out["b_second"] = b.result()
    out["map"] = record_item.map([0, 1, 2, 3])  # position 3
    out["reduce"] = record_fold.reduce([10, 11, 12], [])  # position 4
    out["nested"] = record_nested()  # position 5
    record.future()  # position 6: never run, still takes its position
    out["after_unused"] = record()  # position 7
    return out


@application()
@function()
def ids_reduce_no_initial() -> list[Any]:
    return record_fold.reduce([["start"], 1, 2])  # position 0; first item is the accumulator


@application()
@function()
def ids_tail() -> str:
    record()  # position 0
    return record.future()  # position 1: tail call runs as call 0.1


_lock = threading.Lock()
RETRY_LOG: list[list[str]] = []


@function(retries=Retries(max_retries=2, initial_delay=0))
def flaky_parent() -> list[str]:
    seen = [my_id(), record(), record()]
    with _lock:
        RETRY_LOG.append(seen)
        attempt = len(RETRY_LOG)
    if attempt < 2:
        raise RuntimeError("first attempt fails after starting children")
    return seen


@application()
@function()
def ids_retry() -> list[str]:
    record()  # position 0
    return flaky_parent()  # position 1; its children are 0.1.0 and 0.1.1 on every attempt


@application()
@function()
async def ids_async() -> list[str]:
    first = await record_async()
    second = await record_async()
    return [my_id(), first, second]


@function()
async def record_async() -> str:
    return my_id()
