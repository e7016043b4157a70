"""Serialization: JSON by type hints at the application edge, cloudpickle between functions."""

from __future__ import annotations

import functools
import inspect
import json
import typing
from dataclasses import dataclass
from typing import Any

import cloudpickle
import pydantic

from cove.blobs import BlobRef
from cove.errors import DeserializationError, SDKUsageError, SerializationError
from cove.sdk.file import DEFAULT_TYPE, File
from cove.sdk.function import Function
from cove.sdk.http import HttpBody

_EMPTY = inspect.Parameter.empty
FILE_SCHEMA: dict[str, Any] = {"type": "string", "format": "binary"}
JSON_TYPE = "application/json"


@dataclass
class Parameter:
    """One parameter of an application function."""

    name: str
    hint: Any
    required: bool
    default: Any
    is_file: bool
    adapter: pydantic.TypeAdapter[Any] | None

    def schema(self) -> dict[str, Any]:
        if self.is_file or self.adapter is None:
            return dict(FILE_SCHEMA) if self.is_file else {}
        return self.adapter.json_schema()


@dataclass
class Signature:
    """An application function's parameters and return type, ready to (de)serialize."""

    function_name: str
    parameters: list[Parameter]
    return_hint: Any
    returns_file: bool
    return_adapter: pydantic.TypeAdapter[Any]

    def return_schema(self) -> dict[str, Any]:
        return dict(FILE_SCHEMA) if self.returns_file else self.return_adapter.json_schema()


def _hints(fn: Function) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn.fn, include_extras=True)
    except Exception as exc:
        raise SDKUsageError(
            f"@application {fn.name}: its type hints could not be resolved: {exc}"
        ) from exc


def _adapter(fn_name: str, what: str, hint: Any) -> pydantic.TypeAdapter[Any]:
    try:
        adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(hint)
        adapter.json_schema()
    except Exception as exc:
        raise SDKUsageError(
            f"@application {fn_name}: {what} has type hint {hint!r}, which is not "
            f"JSON-serializable ({type(exc).__name__}: {exc})"
        ) from exc
    return adapter


@functools.cache
def application_signature(fn: Function) -> Signature:
    """Check an application function's signature and build its (de)serializers."""
    sig = inspect.signature(fn.fn)
    hints = _hints(fn)
    params: list[Parameter] = []
    for p in sig.parameters.values():
        if fn.is_method and not params and p.name == "self":
            continue
        where = f"@application {fn.name}: parameter '{p.name}'"
        if p.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise SDKUsageError(f"{where} is positional-only ('/'), which applications reject")
        if p.kind is inspect.Parameter.KEYWORD_ONLY:
            raise SDKUsageError(f"{where} is keyword-only ('*'), which applications reject")
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            raise SDKUsageError(f"{where} is *args, which applications reject")
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            raise SDKUsageError(f"{where} is **kwargs, which applications reject")
        hint = hints.get(p.name, Any)
        is_file = hint is File or hint is HttpBody  # raw bytes, not JSON
        adapter = None if is_file else _adapter(fn.name, f"parameter '{p.name}'", hint)
        params.append(Parameter(p.name, hint, p.default is _EMPTY, p.default, is_file, adapter))
    ret = hints.get("return", Any)
    if ret is HttpBody:
        raise SDKUsageError(
            f"@application {fn.name}: the return type hint is HttpBody, which only application "
            "parameters take: return File (raw bytes with a content type) or a JSON value"
        )
    returns_file = ret is File
    ret_adapter = _adapter(fn.name, "the return value", Any if returns_file else ret)
    return Signature(fn.name, params, ret, returns_file, ret_adapter)


def decode_arguments(signature: Signature, values: dict[str, Any]) -> dict[str, Any]:
    """Turn a request's parsed JSON values (and Files) into the function's keyword args.

    Unknown names are ignored; missing optional parameters take their defaults.
    """
    kwargs: dict[str, Any] = {}
    for p in signature.parameters:
        if p.name not in values:
            if p.required:
                raise DeserializationError(
                    f"application {signature.function_name}: missing required argument '{p.name}'",
                    parameter=p.name,
                )
            continue
        value = values[p.name]
        if p.is_file:
            if not isinstance(value, File | HttpBody):
                raise DeserializationError(
                    f"application {signature.function_name}: parameter '{p.name}' expects a "
                    "file upload",
                    parameter=p.name,
                )
            kwargs[p.name] = _raw(p.hint, value)
            continue
        assert p.adapter is not None
        try:
            kwargs[p.name] = p.adapter.validate_python(value)
        except pydantic.ValidationError as exc:
            raise DeserializationError(
                f"application {signature.function_name}: parameter '{p.name}' does not match "
                f"its type hint {_hint_name(p.hint)}: {_first_error(exc)}",
                parameter=p.name,
            ) from None
    return kwargs


def _raw(hint: Any, value: File | HttpBody) -> File | HttpBody:
    """Raw bytes as the parameter's hint wants them: a ``File`` or an ``HttpBody``."""
    if hint is HttpBody and isinstance(value, File):
        return HttpBody(value.content, value.content_type)
    if hint is File and isinstance(value, HttpBody):
        return File(value.content, value.content_type or DEFAULT_TYPE)
    return value


def encode_output(signature: Signature, value: Any) -> tuple[bytes, str]:
    """The application's return value as HTTP body bytes and content type."""
    if isinstance(value, File):
        return value.content, value.content_type
    if signature.returns_file:
        raise SerializationError(
            f"application {signature.function_name} is hinted to return File but returned "
            f"{type(value).__name__}"
        )
    if value is None and not _accepts_none(signature.return_adapter):
        # pydantic serializes None as null under any hint without a warning: check it here,
        # in the container, so the request fails instead of succeeding with a wrong output.
        raise SerializationError(
            f"application {signature.function_name} returned None, which does not match its "
            f"return type hint {_hint_name(signature.return_hint)}"
        )
    adapter = signature.return_adapter
    try:
        # Validate, then dump: a value the hint can build (a dict for a pydantic model, "5"
        # for an int) is built into it, as the Tensorlake SDK does; others fail here.
        return adapter.dump_json(adapter.validate_python(value), warnings="error"), JSON_TYPE
    except Exception as exc:
        detail = _first_error(exc) if isinstance(exc, pydantic.ValidationError) else str(exc)
        raise SerializationError(
            f"application {signature.function_name}: the return value does not match its "
            f"type hint {_hint_name(signature.return_hint)} or is not JSON-serializable: {detail}"
        ) from None


def json_argument(
    function_name: str, parameter: str, hint: Any, adapter: pydantic.TypeAdapter[Any], value: Any
) -> Any:
    """``value``'s JSON form for an application's parameter, as a client sends it.

    The value is validated against the parameter's hint first (a dict for a pydantic model
    is built into it); one that does not fit raises :class:`SerializationError`."""
    try:
        return json.loads(adapter.dump_json(adapter.validate_python(value), warnings="error"))
    except Exception as exc:
        detail = _first_error(exc) if isinstance(exc, pydantic.ValidationError) else str(exc)
        raise SerializationError(
            f"application {function_name}: the value {_short_repr(value)} for parameter "
            f"'{parameter}' cannot be encoded to its type hint {_hint_name(hint)}: {detail}",
            parameter=parameter,
        ) from None


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _accepts_none(adapter: pydantic.TypeAdapter[Any]) -> bool:
    try:
        adapter.validate_python(None)
    except pydantic.ValidationError:
        return False
    return True


def encode_output_ref(signature: Signature, value: Any) -> tuple[bytes | BlobRef, str]:
    """Like :func:`encode_output`, but a large returned ``File`` comes back as a reference
    to its blob (stored now, streamed, if it is not yet): no bytes cross the channel."""
    if isinstance(value, File):
        ref = value.stored()
        if ref is not None:
            return ref, value.content_type
    return encode_output(signature, value)


def dumps(value: Any, what: str) -> bytes:
    """Pickle a value that crosses between functions; ``what`` names it in errors."""
    try:
        data: bytes = cloudpickle.dumps(value, protocol=5)
    except Exception as exc:
        raise SerializationError(f"{what} could not be pickled: {exc}") from None
    return data


def loads(data: bytes, what: str) -> Any:
    try:
        return cloudpickle.loads(data)
    except Exception as exc:
        raise DeserializationError(f"{what} could not be unpickled: {exc}") from None


def _first_error(exc: pydantic.ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err.get("loc", ()))
    return f"{err.get('msg')}" + (f" at '{loc}'" if loc else "")


def _hint_name(hint: Any) -> str:
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return repr(hint).replace("typing.", "")
