"""An application written for the Tensorlake SDK, unchanged: its imports are
``tensorlake.applications``, which Cove serves (tests/integration/test_tensorlake_compat.py
runs it on a server, with ``cove run`` and with ``python -m cove.tensorlake``)."""

import tensorlake.applications as tl
from tensorlake.applications import (
    FunctionProgress,
    Headers,
    HttpBody,
    Logger,
    RequestContext,
    RequestState,
    application,
    function,
    run_local_application,
)


@function()
def shout(text: str) -> str:
    ctx = RequestContext.get()
    Logger.get_logger(app="tl_greet").bind(step="shout").info("shouting", size=len(text))
    ctx.state.set("shouted", text.upper())
    return text.upper() + "!"


@application()
@function(description="greets, through a child function")
def tl_greet(name: str) -> str:
    loud = shout(f"hello, {name}")
    return f"{loud} ({RequestContext.get().state.get('shouted')})"


@application()
@function()
def tl_raw(body: HttpBody) -> dict:
    return {
        "content_type": body.content_type,
        "text": body.text(),
        "json": body.json(),
        "size": len(body.content),
    }


@function()
def child_headers() -> dict:
    return dict(RequestContext.get().headers)


@application()
@function()
def tl_headers() -> dict:
    ctx = RequestContext.get()
    headers = ctx.headers
    return {
        "is_headers": isinstance(headers, Headers),
        "x_trace": headers.get("X-Trace"),
        "x_trace_all": headers.getlist("x-trace"),
        "authorization": headers.get("authorization"),
        "child": child_headers().get("x-trace"),
    }


@application()
@function()
def tl_impl() -> dict:
    ctx = RequestContext.get()
    return {
        "function": function.__module__,
        "state": isinstance(ctx.state, RequestState),
        "progress": isinstance(ctx.progress, FunctionProgress),
        "base": tl.TensorlakeError.__name__,
        "names": len(tl.__all__),
    }


if __name__ == "__main__":
    request = run_local_application(tl_greet, "Ada")
    print(request.output())
    print(run_local_application(tl_impl).output())
