"""An application's type hints, pickled the way the ``tensorlake`` SDK unpickles them.

Tensorlake's application manifest carries ``entrypoint.inputs_base64`` (a pickled list of
the SDK's ``EntryPointInputManifest(arg_name, type_hint)``) and
``entrypoint.output_type_hints_base64`` (the pickled return hint). ``run_remote_application``
unpickles them to serialize its arguments (``TypeAdapter(hint).dump_json``, a ``File`` as
raw bytes) and to decode the output against the return hint.

The pickles are made where the user's code is imported anyway (Cove's deploy-time
inspection subprocess, :mod:`cove.runtime.inspect`), never in the server: a user's own
classes (pydantic models) are pickled by reference to the user's module, as the SDK does,
so the process that unpickles them must import that module, as on Tensorlake. Cove's
``File`` and ``HttpBody`` are pickled as the SDK's classes of those names, and the SDK's
``EntryPointInputManifest`` by name: neither Cove nor the SDK needs the other installed to
write or read them. A hint that cannot be pickled by reference (a class defined inside a
function) is sent as ``typing.Any``: arguments then go as plain JSON and the output comes
back as plain JSON values.

:func:`fallback_hints` builds the same fields from a stored manifest alone (for versions
deployed before Cove recorded them): ``Any`` for JSON values, the SDK's ``File`` for
files.
"""

from __future__ import annotations

import base64
import importlib
import io
import pickle
from typing import Any

#: Cove's classes (by module and name) and where the SDK keeps its classes of that name.
SDK_CLASSES: dict[str, tuple[str, str]] = {
    "cove.sdk.file.File": ("tensorlake.applications.interface.file", "File"),
    "cove.sdk.http.HttpBody": ("tensorlake.applications.interface.http", "HttpBody"),
}
INPUT_MANIFEST = ("tensorlake.applications.remote.manifests.application", "EntryPointInputManifest")
PROTOCOL = 4  # read by every Python the SDK supports


class _Name:
    """A global of the SDK's process, named but not importable here."""

    def __init__(self, module: str, qualname: str) -> None:
        self.module = module
        self.qualname = qualname

    def __call__(self, *args: Any) -> Any:  # pickle wants a reduce callable to be callable
        raise TypeError(f"{self.module}.{self.qualname} exists only in the SDK's process")


class _Module:
    def __init__(self, name: str) -> None:
        self.name = name


class _InputManifest:
    """The SDK's ``EntryPointInputManifest``, rebuilt by its ``model_validate``."""

    def __init__(self, arg_name: str, type_hint: Any) -> None:
        self.arg_name = arg_name
        self.type_hint = type_hint


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _Module):
            return importlib.import_module, (obj.name,)
        if isinstance(obj, _Name):
            parent, _, attr = obj.qualname.rpartition(".")
            owner: Any = _Name(obj.module, parent) if parent else _Module(obj.module)
            return getattr, (owner, attr)
        if isinstance(obj, _InputManifest):
            validate = _Name(INPUT_MANIFEST[0], f"{INPUT_MANIFEST[1]}.model_validate")
            return validate, ({"arg_name": obj.arg_name, "type_hint": obj.type_hint},)
        if isinstance(obj, type):
            sdk = SDK_CLASSES.get(f"{obj.__module__}.{obj.__qualname__}")
            if sdk is not None:
                return self.reducer_override(_Name(*sdk))
        return NotImplemented


def _dumps(value: Any) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=PROTOCOL).dump(value)
    return buffer.getvalue()


def _picklable(hint: Any) -> Any:
    """``hint`` if it pickles by reference, else ``typing.Any``."""
    try:
        _dumps(hint)
    except Exception:
        return Any
    return hint


def entrypoint_hints(inputs: list[tuple[str, Any]], output: Any) -> dict[str, str]:
    """``inputs_base64`` and ``output_type_hints_base64`` for parameters ``(name, hint)``
    in definition order and a return hint."""
    manifests = [_InputManifest(name, _picklable(hint)) for name, hint in inputs]
    return {
        "inputs_base64": base64.b64encode(_dumps(manifests)).decode("ascii"),
        "output_type_hints_base64": base64.b64encode(_dumps(_picklable(output))).decode("ascii"),
    }


def fallback_hints(application: dict[str, Any]) -> dict[str, str]:
    """The two fields from a Cove application manifest alone (no user code imported)."""

    file = _Name(*SDK_CLASSES["cove.sdk.file.File"])

    def raw_hint(param: dict[str, Any]) -> Any:
        if not param.get("is_file"):
            return Any
        return _Name(*SDK_CLASSES["cove.sdk.http.HttpBody"]) if param.get("raw_body") else file

    inputs = [(p["name"], raw_hint(p)) for p in application.get("parameters", [])]
    return entrypoint_hints(inputs, file if application.get("returns_file") else Any)
