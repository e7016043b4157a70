"""Request state shared between function calls."""

from typing import Any

from cove import RequestContext, application, function


@function()
def reader_writer() -> Any:
    state = RequestContext.get().state
    seen = state.get("from_app")
    state.set("from_child", {"n": 2})
    return seen


@application()
@function()
def share(tag: str) -> dict[str, Any]:
    state = RequestContext.get().state
    before = state.get("from_app", "absent")
    state.set("from_app", tag)
    child_saw = reader_writer()
    return {
        "before": before,
        "child_saw": child_saw,
        "from_child": state.get("from_child"),
        "missing_default": state.get("nope", 42),
        "missing": state.get("nope"),
    }


@application()
@function()
def report() -> str:
    ctx = RequestContext.get()
    ctx.progress.update(1, 10, "started")
    ctx.progress.update(10, 10)
    ctx.metrics.timer("load_seconds", 0.25)
    ctx.metrics.counter("items")
    ctx.metrics.counter("items", 5)
    return "ok"


@application()
@function()
def bad_state_key() -> None:
    RequestContext.get().state.set("", 1)


@application()
@function()
def bad_progress() -> None:
    RequestContext.get().progress.update(-1, 10)
