"""What a call's threads and forked children may do with the SDK (issue 15), the same through
``run_local_application`` and on a server.

As in the Tensorlake SDK: ``RequestContext.get()`` works in a child process forked by a call
(``multiprocessing`` with the ``fork`` start method) and gives the call's ``request_id``; a
thread the call starts cannot call functions. Cove's documented subset in the child: what
needs the call's channel (state, headers, progress, metrics, calls) raises ``SDKUsageError``
(the SDK's runner hangs on state and calls there).
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
from collections.abc import Callable
from typing import Any

from cove import RequestContext, application, function

# Set by a test to hold ``straggler`` until it has checked plain calls (local runner only).
release = threading.Event()
straggling = threading.Event()


def outcome(thunk: Callable[[], Any]) -> Any:
    try:
        return ["ok", thunk()]
    except Exception as exc:
        return [type(exc).__name__]


@function()
def double(x: int) -> int:
    return x * 2


def _probe_in_child(results: Any) -> None:
    ctx = RequestContext.get()
    found = {
        "request_id": ctx.request_id,
        "function_call_id": ctx.function_call_id,
        "state_get": outcome(lambda: ctx.state.get("parent_key")),
        "state_set": outcome(lambda: ctx.state.set("child_key", 1)),
        "headers": outcome(lambda: dict(ctx.headers)),
        "progress": outcome(lambda: ctx.progress.update(1, 2)),
        "counter": outcome(lambda: ctx.metrics.counter("c", 1)),
        "call": outcome(lambda: double(1)),
        "future": outcome(lambda: double.future(1).run().result()),
    }
    results.put(found)


@application()
@function()
def forked_child_context(x: int) -> dict[str, Any]:
    """The parent's context as its forked child sees it, and what the child may do with it."""
    ctx = RequestContext.get()
    ctx.state.set("parent_key", "parent")
    mp = multiprocessing.get_context("fork")
    results: Any = mp.Queue()
    child = mp.Process(target=_probe_in_child, args=(results,))
    child.start()
    try:
        found: dict[str, Any] = results.get(timeout=60)
    except queue.Empty:
        found = {"exitcode": child.exitcode}
    child.join(60)
    found["same_request_id"] = found.pop("request_id", None) == ctx.request_id
    found["same_call_id"] = found.pop("function_call_id", None) == ctx.function_call_id
    found["child_key_in_parent"] = ctx.state.get("child_key")
    return found


@application()
@function()
def calls_from_a_user_thread(x: int) -> dict[str, Any]:
    """Function calls from a thread the call started: ``SDKUsageError``, as in the SDK."""
    found: dict[str, Any] = {}

    def work() -> None:
        found["call"] = outcome(lambda: double(x))
        found["future"] = outcome(lambda: double.future(x).run().result())
        found["map"] = outcome(lambda: double.map([x]))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(60)
    found["own_thread"] = outcome(lambda: double(x))
    return found


@function()
def straggler(x: int) -> int:
    straggling.set()
    release.wait(60)
    return x


@application()
@function()
def leaves_a_call_running(x: int) -> int:
    """Returns while a call it started still runs (its output is not needed)."""
    straggler.future(x).run()
    return x
