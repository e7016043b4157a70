"""RequestContext and calls from a thread the user started, and from a child process."""

import multiprocessing
import threading

from tensorlake.applications import RequestContext, application, function


def outcome(thunk) -> str:
    try:
        return f"ok {thunk()!r}"
    except Exception as exc:
        return type(exc).__name__


@function()
def double(x: int) -> int:
    return x * 2


def in_thread(thunk) -> str:
    result: list[str] = []
    thread = threading.Thread(target=lambda: result.append(outcome(thunk)))
    thread.start()
    thread.join(60)
    return result[0] if result else "hung"


@application()
@function()
def context_in_thread(x: int) -> str:
    return in_thread(lambda: RequestContext.get().request_id is not None)


@application()
@function()
def state_in_thread(x: int) -> str:
    return in_thread(lambda: RequestContext.get().state.set("k", x))


@application()
@function()
def future_run_in_thread(x: int) -> str:
    return in_thread(lambda: double.future(x).run().result())


def _child(queue) -> None:
    queue.put(outcome(lambda: RequestContext.get().request_id is not None))


@application()
@function()
def context_in_child_process(x: int) -> str:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    process = ctx.Process(target=_child, args=(queue,))
    process.start()
    process.join(60)
    return queue.get(timeout=5) if not queue.empty() else f"exit {process.exitcode}"


CASES = [
    {"name": "context_in_user_thread", "app": "context_in_thread", "args": [1]},
    {"name": "state_set_in_user_thread", "app": "state_in_thread", "args": [1]},
    {"name": "future_run_in_user_thread", "app": "future_run_in_thread", "args": [3]},
    {"name": "context_in_child_process", "app": "context_in_child_process", "args": [1]},
]
