"""Run by the ``tensorlake`` SDK's own python (never Cove's): calls applications of
tests/apps/tl_sdk.py on the server ``TENSORLAKE_API_URL`` names, as a Tensorlake user would,
and prints one JSON line per scenario: its value (or the exception's type and ``str``) and
the request id. Used by tests/e2e/test_tensorlake_sdk.py.

``python tensorlake_driver.py SCENARIO[=ARG]...``: one JSON object in all, by scenario.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tl_sdk  # tests/apps on PYTHONPATH: the pydantic models outputs decode into
from pydantic import BaseModel
from tensorlake.applications import File, run_remote_application
from tensorlake.applications.remote.api_client import APIClient


def shown(value: Any) -> Any:
    if isinstance(value, File):
        content = base64.b64encode(value.content).decode()
        return {"file": {"content_b64": content, "content_type": value.content_type}}
    if isinstance(value, BaseModel):
        return {"model": type(value).__qualname__, "data": value.model_dump(mode="json")}
    return value


def call(app: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    request = run_remote_application(app, *args, **kwargs)
    result: dict[str, Any] = {"request_id": request.id}
    try:
        result["value"] = shown(request.output())
    except Exception as exc:
        result["error"] = {"type": type(exc).__name__, "str": str(exc)}
    return result


def not_finished(release: str) -> dict[str, Any]:
    """A running request's output: RequestNotFinished; then, released, its value."""
    request = run_remote_application("tl_wait", release)
    result: dict[str, Any] = {"request_id": request.id}
    try:
        APIClient().request_output("tl_wait", request.id)
        result["early"] = None
    except Exception as exc:
        result["early"] = {"type": type(exc).__name__, "str": str(exc)}
    Path(release).write_text("go")
    result["value"] = request.output()
    return result


def apps() -> dict[str, Any]:
    return {"names": sorted(a.name for a in APIClient().applications())}


SCENARIOS: dict[str, Callable[..., dict[str, Any]]] = {
    "hello": lambda: call("tl_hello"),
    "greet": lambda: call("tl_greet", "bob"),
    "combine": lambda: call("tl_combine", 3, "y", c=[1, 2]),
    "combine_keyword": lambda: call("tl_combine", a=5),
    "combine_extra": lambda: call("tl_combine", 7, "z", [9], "ignored", unknown=1),
    "upper_file": lambda: call("tl_upper_file", File(content=b"abc", content_type="text/plain")),
    "stamp_file": lambda: call(
        "tl_stamp_file", File(content=b"%PDF", content_type="application/pdf"), stamp="S1"
    ),
    "area": lambda: call(
        "tl_area",
        tl_sdk.Box(corner=tl_sdk.Point(x=1, y=2), width=4, height=3),
    ),
    "fails": lambda: call("tl_fails", 3),
    "rejects": lambda: call("tl_rejects", 4),
    "steps": lambda: call("tl_steps", 3),
    "missing": lambda: call("no_such_app"),
    "not_finished": not_finished,
    "apps": apps,
}


def main() -> None:
    results = {}
    for spec in sys.argv[1:]:
        name, _, arg = spec.partition("=")
        try:
            results[name] = SCENARIOS[name](*([arg] if arg else []))
        except Exception as exc:
            results[name] = {"error": {"type": type(exc).__name__, "str": str(exc)}}
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
