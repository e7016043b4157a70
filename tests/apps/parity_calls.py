"""Definitions, calls and errors as the Tensorlake SDK has them (issue 15): each app here
behaves the same through ``run_local_application`` and on a server."""

from __future__ import annotations

import multiprocessing
import queue
import threading
from typing import Any

from pydantic import BaseModel

from cove import RequestContext, RequestError, Retries, application, function


class Reading(BaseModel):
    sensor: str
    value: float


# ``@function()`` above ``@application()``: the Tensorlake SDK takes either order.
@function(retries=Retries(max_retries=1, initial_delay=0.01))
@application(tags={"order": "function-first"})
def function_first(x: int) -> int:
    return x + 1


@application()
@function()
def no_parameters() -> str:
    return "none"


@application()
@function()
def fails_with_request_error(reason: str) -> int:
    raise RequestError(f"rejected: {reason}")


@application()
@function()
def fails_with_value_error(x: int) -> int:
    raise ValueError(f"bad value {x}")


@application()
@function()
def child_fails(x: int) -> int:
    return fails_with_value_error(x)  # type: ignore[no-any-return]


# Small resources: the Tensorlake SDK takes any number above 0.
@application()
@function(cpu=0.5, memory=0.5, ephemeral_disk=1.0)
def small_resources(x: int) -> int:
    return x * 2


@application()
@function()
def reports_progress(steps: int) -> list[str]:
    progress = RequestContext.get().progress
    progress.update(1, steps, "first", attributes={"stage": "one"})
    progress.update(current=2, total=steps, message=None, attributes=None)
    refused = []
    bad: list[dict[str, Any]] = [
        {"current": "1", "total": 2},
        {"current": 1, "total": None},
        {"current": -1, "total": 2},
        {"current": 1, "total": 2, "message": 3},
        {"current": 1, "total": 2, "attributes": {"k": 1}},
        {"current": 1, "total": 2, "attributes": ["k"]},
    ]
    for kwargs in bad:
        try:
            progress.update(**kwargs)
        except Exception as exc:
            refused.append(type(exc).__name__)
    return refused


def _context_in_thread(out: list[str]) -> None:
    try:
        RequestContext.get()
        out.append("context")
    except Exception as exc:
        out.append(type(exc).__name__)


def _context_in_child(results: Any) -> None:
    try:
        RequestContext.get()
        results.put("context")
    except Exception as exc:
        results.put(type(exc).__name__)


def _state_in_child(ctx: Any, results: Any) -> None:
    try:
        ctx.state.set("from_child", 1)
        results.put("set")
    except Exception as exc:
        results.put(type(exc).__name__)


@application()
@function()
def context_elsewhere(x: int) -> dict[str, str]:
    """What ``RequestContext`` does in a thread and in a child process the call started."""
    out: list[str] = []
    thread = threading.Thread(target=_context_in_thread, args=(out,))
    thread.start()
    thread.join()
    found = {"thread": out[0]}
    # The default start method (the SDK's runner makes it spawn; here it is fork). A forked
    # child gets the call's context, as in the SDK with fork, but using its state (fork: the
    # context is not pickled) raises SDKUsageError instead of writing to a channel that
    # belongs to the call's process (tests/apps/forked_child.py, docs/tensorlake.md).
    for name, target, args in (
        ("process", _context_in_child, ()),
        ("process_state", _state_in_child, (RequestContext.get(),)),
    ):
        results: Any = multiprocessing.Queue()
        child = multiprocessing.Process(target=target, args=(*args, results))
        child.start()
        try:
            found[name] = results.get(timeout=60)
        except queue.Empty:
            found[name] = "no answer"
        child.join(60)
    found["own"] = type(RequestContext.get()).__name__
    return found


@function(retries=Retries(max_retries=2, initial_delay=0.01))
def append_once(items: list[int]) -> int:
    """Fails its first attempt after mutating its argument: a retry must see a fresh copy."""
    items.append(len(items))
    state = RequestContext.get().state
    attempts = state.get("append_attempts", 0) or 0
    state.set("append_attempts", attempts + 1)
    if attempts == 0:
        raise ValueError("first attempt fails")
    return len(items)


@application()
@function()
def retried_mutation(n: int) -> int:
    return append_once(list(range(n)))  # type: ignore[no-any-return]


@application()
@function()
def reading_from_dict(sensor: str) -> Reading:
    return {"sensor": sensor, "value": "1.5"}  # type: ignore[return-value]


@application()
@function()
def readings_from_dicts(n: int) -> list[Reading]:
    return [{"sensor": f"s{i}", "value": i} for i in range(n)]  # type: ignore[misc]


@application()
@function()
def takes_reading(reading: Reading, scale: int = 1) -> float:
    return reading.value * scale


@function()
def not_an_application(x: int) -> int:
    return x
