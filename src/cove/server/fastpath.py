"""The per-call routes on the shortest path through the ASGI stack.

Invoking an application and reading a request's status and output are most of what a
server answers. Through FastAPI, each of them also passed its middleware chain (error,
exception, exit-stack, body-limit and telemetry layers), its router's linear match over
every route, and its dependency solver for two or three parameters: about as much CPU as
Cove's own work for the call (docs/benchmarks.md, "The hot path").

:class:`FastPath` takes those requests before FastAPI does and calls the very same route
functions (the ones FastAPI documents in the OpenAPI schema) with their parameters taken
from the path and the query string, behind the same :class:`cove.server.auth.Guard`, and
answers their exceptions as the installed handlers do (:func:`cove.server.errors.
response_for`; plain text on Tensorlake's routes). It decides from the path and the query
alone, before anything is read: a request with anything it does not parse trivially (a
``wait`` that is not a plain number, a repeated parameter, a trailing slash) goes through
FastAPI as before, so both paths answer alike.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from cove.engine.settings import Settings
from cove.errors import CoveError
from cove.server import auth, errors, requests, tensorlake_api

Handler = Callable[..., Awaitable[Any]]
#: A number as FastAPI reads a float parameter (others go through FastAPI, which says why).
_NUMBER = re.compile(r"\d+(\.\d*)?|\.\d+")

Routes = dict[tuple[str, tuple[str, ...]], tuple[Handler, tuple[str, ...]]]
# (method, path segments) -> (route function, names of its path parameters); "*" is one.
_COVE: Routes = {
    ("POST", ("applications", "*")): (requests.invoke, ("app",)),
    ("GET", ("applications", "*", "requests", "*")): (requests.get_request, ("app", "request_id")),
    ("GET", ("applications", "*", "requests", "*", "output")): (
        requests.get_output,
        ("app", "request_id"),
    ),
}
_TENSORLAKE: Routes = {
    ("POST", ("v1", "namespaces", "*", "applications", "*")): (
        tensorlake_api.invoke,
        ("ns", "app"),
    ),
    ("GET", ("v1", "namespaces", "*", "applications", "*", "requests", "*")): (
        tensorlake_api.get_request,
        ("ns", "app", "request_id"),
    ),
    ("GET", ("v1", "namespaces", "*", "applications", "*", "requests", "*", "output")): (
        tensorlake_api.get_output,
        ("ns", "app", "request_id"),
    ),
}
#: The query parameters each route reads (all are numbers); others are ignored, as FastAPI does.
_QUERY: dict[Handler, tuple[str, ...]] = {
    requests.invoke: ("wait",),
    requests.get_output: ("wait",),
}


def _match(method: str, path: str) -> tuple[Handler, dict[str, str], bool] | None:
    """The route for ``path``, its path parameters, and whether it is Tensorlake's."""
    parts = path.split("/")
    if parts[0] != "" or "" in parts[1:]:
        return None  # not absolute, or an empty segment (a trailing slash, "//")
    parts = parts[1:]
    for table, tensorlake in ((_COVE, False), (_TENSORLAKE, True)):
        for (verb, shape), (handler, names) in table.items():
            if verb != method or len(shape) != len(parts):
                continue
            values = []
            for want, got in zip(shape, parts, strict=True):
                if want == "*":
                    values.append(got)
                elif want != got:
                    break
            else:
                return handler, dict(zip(names, values, strict=True)), tensorlake
    return None


def _query(handler: Handler, query_string: bytes) -> dict[str, float | None] | None:
    """The route's numeric query parameters, or None when one is not a plain number."""
    wanted = _QUERY.get(handler, ())
    found: dict[str, float | None] = dict.fromkeys(wanted)
    if not query_string:
        return found
    seen = set()
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name not in found:
            continue
        if name in seen or not _NUMBER.fullmatch(value):
            return None
        seen.add(name)
        found[name] = float(value)
    return found


class FastPath:
    """The ASGI app that answers the per-call routes (see the module's docstring)."""

    def __init__(self, settings: Settings) -> None:
        self._guarded: ASGIApp = auth.Guard(self._dispatch, settings)

    def takes(self, scope: Scope) -> bool:
        """Whether this request is one :class:`FastPath` answers (decided before the
        Guard: its path then names the application as the client wrote it)."""
        route = _match(scope["method"], scope["path"])
        query = _query(route[0], scope["query_string"]) if route is not None else None
        scope["cove.query"] = query  # read once: the Guard changes the path, not the query
        return query is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._guarded(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        # After the Guard: the path names the application with its namespace.
        route = _match(scope["method"], scope["path"])
        query = scope.get("cove.query")
        if route is None or query is None:  # the Guard changes names, not shapes
            raise RuntimeError(f"fast path lost its route: {scope['path']}")
        handler, params, tensorlake = route
        request = Request(scope, receive, send)
        try:
            result = await handler(request=request, **params, **query)
            response = result if isinstance(result, Response) else JSONResponse(result)
        except CoveError as err:
            response = tensorlake_api.text_error(err) if tensorlake else errors.error_response(err)
        except Exception as exc:
            response = errors.response_for(exc)
        await response(scope, receive, send)
