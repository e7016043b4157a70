"""``run_remote_application``: call an application deployed on a Cove server."""

from __future__ import annotations

import json
import time
from typing import Any

import jsonschema
import pydantic

from cove.errors import SDKUsageError, SerializationError
from cove.errors import TimeoutError as CoveTimeoutError
from cove.sdk.client import Client, decode_output
from cove.sdk.codec import application_signature, json_argument
from cove.sdk.file import File
from cove.sdk.function import Function
from cove.sdk.http import HttpBody
from cove.sdk.local import not_an_application
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

    ``app`` is the application function or its name; arguments go by position or by name
    (with a name, the server's manifest says the parameters). A value that does not fit its
    parameter's type hint raises :class:`SerializationError` here; positional arguments
    beyond the parameters, and keyword arguments that name none, are ignored. Arguments are
    sent as JSON (one parameter) or multipart form data (several, or files).
    """
    if isinstance(app, Function) and app.application is None:
        raise SDKUsageError(not_an_application(app.name))
    fn = app if isinstance(app, Function) else None
    name = fn.name if fn is not None else str(app)
    client = Client(server)
    params = _parameters(fn) if fn is not None else _remote_parameters(client, name)
    names = [p.name for p in params]
    values: dict[str, Any] = dict(zip(names, args, strict=False))
    values.update((k, v) for k, v in kwargs.items() if k in names)
    encoded = {p.name: p.encode(name, values[p.name]) for p in params if p.name in values}
    response = client.invoke(name, **_body(encoded, len(params)))
    request_id = response.json()["request_id"]
    return RemoteRequest(client, name, request_id, fn)


class _Param:
    """A parameter as the caller encodes it: by its type hint, or by its JSON Schema."""

    def __init__(
        self,
        name: str,
        hint: Any = Any,
        adapter: pydantic.TypeAdapter[Any] | None = None,
        schema: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.hint = hint
        self.adapter = adapter
        self.schema = schema

    def encode(self, app: str, value: Any) -> bytes | File | HttpBody:
        if isinstance(value, File | HttpBody):
            return value
        if self.adapter is not None:
            data = json_argument(app, self.name, self.hint, self.adapter, value)
        else:
            data = _any_json(app, self.name, value)
            if self.schema is not None:
                _check_schema(app, self.name, self.schema, data)
        return json.dumps(data).encode()


def _parameters(fn: Function) -> list[_Param]:
    return [_Param(p.name, p.hint, p.adapter) for p in application_signature(fn).parameters]


def _remote_parameters(client: Client, app: str) -> list[_Param]:
    manifest = client.application(app)
    return [
        _Param(p["name"], schema=None if p.get("is_file") else p.get("schema"))
        for p in manifest.get("parameters", [])
    ]


def _any_json(app: str, parameter: str, value: Any) -> Any:
    try:
        return json.loads(pydantic.TypeAdapter(Any).dump_json(value))
    except Exception as exc:
        raise SerializationError(
            f"application {app}: the value for parameter '{parameter}' is not "
            f"JSON-serializable: {exc}",
            parameter=parameter,
        ) from None


def _check_schema(app: str, parameter: str, schema: dict[str, Any], value: Any) -> None:
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    error = jsonschema.exceptions.best_match(cls(schema).iter_errors(value))
    if error is not None:
        raise SerializationError(
            f"application {app}: the value for parameter '{parameter}' cannot be encoded to "
            f"its type: {error.message}",
            parameter=parameter,
        )


def _body(encoded: dict[str, bytes | File | HttpBody], parameters: int) -> dict[str, Any]:
    if not encoded:
        return {}
    if len(encoded) == 1 and parameters == 1:
        (value,) = encoded.values()
        if isinstance(value, bytes):
            return {"content": value, "headers": {"Content-Type": "application/json"}}
        return {
            "content": value.content,
            "headers": {"Content-Type": value.content_type or "application/octet-stream"},
        }
    files: dict[str, tuple[str, bytes, str]] = {}
    for key, value in encoded.items():
        if isinstance(value, bytes):
            files[key] = (key, value, "application/json")
        else:
            files[key] = (key, value.content, value.content_type or "application/octet-stream")
    return {"files": files}
