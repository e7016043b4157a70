"""Applications exercising the core HTTP contract."""

from typing import Any

from pydantic import BaseModel

from cove import File, RequestContext, RequestError, Retries, application, function


class Point(BaseModel):
    x: int
    y: int = 0


@application()
@function()
def noargs() -> str:
    return "hello"


@application()
@function()
def shout(text: str) -> str:
    return text.upper()


@application()
@function()
def combine(a: int, b: list[str], c: Point, d: str | int = "none") -> dict[str, Any]:
    return {"a": a, "b": b, "c": c.model_dump(), "d": d}


@application()
@function()
def anything(value: Any) -> Any:
    return {"got": value}


@application()
@function()
def upload(doc: File) -> File:
    return File(doc.content.upper(), doc.content_type)


@application()
@function()
def upload_and_label(doc: File, label: str) -> dict[str, Any]:
    return {"label": label, "size": len(doc.content), "type": doc.content_type}


@function()
def flaky_child(n: int) -> int:
    ctx = RequestContext.get()
    seen = ctx.state.get("failures", 0)
    if seen < n:
        ctx.state.set("failures", seen + 1)
        raise RuntimeError(f"failure {seen + 1}")
    return seen


@application(retries=Retries(max_retries=3, initial_delay=0.01))
@function()
def retried(n: int) -> int:
    return flaky_child(n)


@application()
@function()
def caught(n: int) -> str:
    try:
        flaky_child(n)
    except Exception as exc:  # a child's failure is a typed error the caller can handle
        return f"handled {type(exc).__name__}: {exc}"
    return "no error"


@application()
@function()
def request_error() -> str:
    raise RequestError("bad request input")


@function()
def blocker(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


@application()
@function()
def slow(seconds: float) -> float:
    return blocker(seconds)


@application()
@function()
def forgets_to_return(text: str) -> str:
    """Hinted to return a str, returns None: a failure, never an output of null."""
    text.upper()
