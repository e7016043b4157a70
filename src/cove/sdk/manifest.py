"""Manifests: what a deployed file holds, as JSON the server can keep without the code."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from cove.errors import SDKUsageError
from cove.sdk import tensorlake_alias
from cove.sdk.codec import Parameter, application_signature
from cove.sdk.decorators import registered_functions
from cove.sdk.function import Function
from cove.sdk.http import HttpBody
from cove.sdk.tensorlake_hints import entrypoint_hints


def load_module(path: Path, module_name: str | None = None) -> ModuleType:
    """Import a Python file as a module named after its stem (so pickles find it again)."""
    name = module_name or path.stem
    tensorlake_alias.install()  # `from tensorlake.applications import ...` gets Cove's
    if not name.isidentifier():
        raise SDKUsageError(f"{path.name}: the file name must be a valid Python module name")
    directory = str(path.parent.resolve())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SDKUsageError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def function_manifest(fn: Function) -> dict[str, Any]:
    if fn.is_method and fn.cls is None:
        raise SDKUsageError(
            f"@function {fn.name} is a method: decorate its class {fn.class_name} with @cls()"
        )
    data = fn.config.to_dict()
    data.update(
        name=fn.name,
        class_name=fn.class_name,
        is_async=fn.is_async,
        init_timeout=getattr(fn.cls, "__cove_init_timeout__", None) if fn.cls else None,
    )
    return data


def application_manifest(fn: Function) -> dict[str, Any]:
    assert fn.application is not None
    sig = application_signature(fn)
    return {
        "name": fn.name,
        "function": fn.name,
        "description": fn.config.description or (fn.fn.__doc__ or "").strip(),
        "tags": dict(fn.application.tags),
        "retries": fn.application.retries.to_dict(),
        "region": fn.application.region,
        "allow": list(fn.application.allow),
        "parameters": [_parameter(p) for p in sig.parameters],
        "return_schema": sig.return_schema(),
        "returns_file": sig.returns_file,
        # For Tensorlake's SDK (GET /v1/.../applications/{app}): pickled here, where the
        # user's module is imported, so that its classes pickle by reference.
        "tensorlake": entrypoint_hints([(p.name, p.hint) for p in sig.parameters], sig.return_hint),
    }


def _parameter(p: Parameter) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": p.name,
        "required": p.required,
        "is_file": p.is_file,
        "schema": p.schema(),
    }
    if p.hint is HttpBody:
        data["raw_body"] = True  # the body as sent, whatever its content type
    if not p.required and p.adapter is not None:
        # A default that JSON cannot show is simply not listed.
        with contextlib.suppress(Exception):
            data["default"] = p.adapter.dump_python(p.default, mode="json")
    return data


def module_manifest(module_name: str) -> dict[str, Any]:
    """The manifest of every function and application defined in a module."""
    functions = registered_functions(module_name)
    apps = [application_manifest(f) for f in functions.values() if f.application is not None]
    if not apps:
        raise SDKUsageError(
            f"module {module_name} defines no application: decorate an entry point with "
            "@application() and @function()"
        )
    return {
        "module": module_name,
        "applications": apps,
        "functions": [function_manifest(f) for f in functions.values()],
    }
