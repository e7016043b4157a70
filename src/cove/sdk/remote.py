"""``run_remote_application``: call an application deployed on a Cove server."""

from __future__ import annotations

import time
from typing import Any

import pydantic

from cove.errors import SDKUsageError
from cove.errors import TimeoutError as CoveTimeoutError
from cove.sdk.client import Client, decode_output
from cove.sdk.codec import application_signature
from cove.sdk.file import File
from cove.sdk.function import Function
from cove.sdk.request import Request

_POLL_WAIT = 30.0


class RemoteRequest(Request):
    """A request running on a server; ``output()`` waits for it."""

    def __init__(self, client: Client, app: str, request_id: str, fn: Function | None) -> None:
        self._client = client
        self._app = app
        self._id = request_id
        self._fn = fn

    @property
    def id(self) -> str:
        return self._id

    def status(self) -> dict[str, Any]:
        """The request's status JSON."""
        return self._client.request(self._app, self._id)

    def output(self, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = _POLL_WAIT if deadline is None else deadline - time.monotonic()
            response = self._client.output(
                self._app, self._id, wait=max(0.0, min(remaining, _POLL_WAIT))
            )
            if response.status_code != 202:
                return self._typed(decode_output(response))
            if deadline is not None and time.monotonic() >= deadline:
                raise CoveTimeoutError(
                    f"request {self._id} did not finish within {timeout} s",
                    request_id=self._id,
                )

    def _typed(self, value: Any) -> Any:
        if self._fn is None or isinstance(value, File):
            return value
        adapter = application_signature(self._fn).return_adapter
        return adapter.validate_python(value)


def run_remote_application(
    app: Function | str, *args: Any, server: str | None = None, **kwargs: Any
) -> Request:
    """Start a request of a deployed application and return it (use ``.output()``).

    ``app`` is the application function or its name. Arguments are sent as JSON (one
    argument) or multipart form data (several, or files).
    """
    fn = app if isinstance(app, Function) else None
    name = fn.name if fn is not None else str(app)
    if fn is not None and fn.application is None:
        raise SDKUsageError(f"{fn.name} is not an @application function")
    client = Client(server)
    if fn is not None:
        sig = application_signature(fn)
        names = [p.name for p in sig.parameters]
        if len(args) > len(names):
            raise SDKUsageError(f"application {name} takes {len(names)} argument(s)")
        values: dict[str, Any] = dict(zip(names, args, strict=False))
        values.update(kwargs)
        adapters = {p.name: p.adapter for p in sig.parameters}
    elif args:
        raise SDKUsageError("pass arguments by name when the application is given by name")
    else:
        values, adapters = dict(kwargs), {}
    response = client.invoke(name, **_body(values, adapters))
    request_id = response.json()["request_id"]
    return RemoteRequest(client, name, request_id, fn)


def _body(values: dict[str, Any], adapters: dict[str, Any]) -> dict[str, Any]:
    def encode(key: str, value: Any) -> bytes:
        adapter = adapters.get(key) or pydantic.TypeAdapter(Any)
        data: bytes = adapter.dump_json(value)
        return data

    if not values:
        return {}
    if len(values) == 1 and len(adapters) <= 1:
        ((key, value),) = values.items()
        if isinstance(value, File):
            return {"content": value.content, "headers": {"Content-Type": value.content_type}}
        if adapters:
            return {"content": encode(key, value), "headers": {"Content-Type": "application/json"}}
    files: dict[str, tuple[str, bytes, str]] = {}
    for key, value in values.items():
        if isinstance(value, File):
            files[key] = (key, value.content, value.content_type)
        else:
            files[key] = (key, encode(key, value), "application/json")
    return {"files": files}
