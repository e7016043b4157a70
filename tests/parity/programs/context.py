"""The request context: state shared across calls, progress updates, metrics, ids."""

import asyncio

from tensorlake.applications import RequestContext, application, function


def outcome(thunk) -> str:
    try:
        return f"ok {thunk()!r}"
    except Exception as exc:
        return type(exc).__name__


@function()
def writer(key: str, value: int) -> None:
    RequestContext.get().state.set(key, value)


@function()
def reader(key: str) -> int:
    return RequestContext.get().state.get(key, -1)


@function()
async def areader(key: str) -> int:
    return RequestContext.get().state.get(key, -1)


@application()
@function()
def state_across_calls(x: int) -> list:
    ctx = RequestContext.get()
    before = ctx.state.get("k")
    default = ctx.state.get("k", "dflt")
    writer("k", x)
    return [before, default, reader("k"), ctx.state.get("k"), reader("missing")]


@application()
@function()
async def async_state(x: int) -> list:
    RequestContext.get().state.set("a", {"v": x})
    return [RequestContext.get().state.get("a"), await areader("nothing")]


@application()
@function()
def progress_updates(x: int) -> list[str]:
    progress = RequestContext.get().progress
    return [
        outcome(lambda: progress.update(1, 2)),
        outcome(lambda: progress.update(1, 2, "m")),
        outcome(lambda: progress.update(1, 2, "m", attributes={"k": "v"})),
        outcome(lambda: progress.update(2.5, 10.0, message="half")),
    ]


@application()
@function()
def progress_bad_types(x: int) -> list[str]:
    progress = RequestContext.get().progress
    return [
        outcome(lambda: progress.update(1, 2, "m", attributes={"k": 1})),
        outcome(lambda: progress.update(1, 2, "m", attributes=["k"])),
        outcome(lambda: progress.update("one", 2)),
        outcome(lambda: progress.update(1, 2, message=3)),
    ]


@application()
@function()
def metrics(x: int) -> str:
    ctx = RequestContext.get()
    ctx.metrics.timer("t", 0.5)
    ctx.metrics.counter("c")
    ctx.metrics.counter("c", 2)
    return "recorded"


@application()
@function()
def request_id_shape(x: int) -> bool:
    request_id = RequestContext.get().request_id
    return isinstance(request_id, str) and bool(request_id)


@application()
@function()
def context_outside_call(x: int) -> str:
    async def inner() -> str:
        return outcome(lambda: RequestContext.get().request_id is not None)

    return asyncio.run(inner())


CASES = [
    {"name": "state_across_calls", "app": "state_across_calls", "args": [7]},
    {"name": "async_state", "app": "async_state", "args": [3]},
    {"name": "progress_update_forms", "app": "progress_updates", "args": [1]},
    {"name": "progress_bad_types", "app": "progress_bad_types", "args": [1]},
    {"name": "metrics", "app": "metrics", "args": [1]},
    {"name": "request_id", "app": "request_id_shape", "args": [1]},
    {"name": "context_in_own_event_loop", "app": "context_outside_call", "args": [1]},
]
