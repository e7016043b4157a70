"""Run one parity program's cases and print each normalized outcome as a JSON line.

``python runner.py MODE PROGRAM.py [SKIP]``, MODE ``local`` (``run_local_application``) or
``remote`` (``run_remote_application``; Cove reads the server from ``COVE_URL``). Standalone:
it runs in the reference SDK's virtual environment as well as in Cove's, and imports nothing
but ``tensorlake.applications``: the real SDK there, Cove here (after importing the module
``COVE_PARITY_ALIAS`` names, ``cove.tensorlake``, or from a stand-in on PYTHONPATH). The
first ``SKIP`` cases are left out (the harness restarts a runner after a case that hung).

Protocol, one JSON object a line on the original stdout (the program's own prints, and the
reference runner's logs, go to stderr): ``{"import": OUTCOME}``, then per case ``{"start":
NAME, "str": COMPARE_STR}`` and ``{"case": NAME, "outcome": OUTCOME}``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any


def normalize(value: Any) -> Any:
    """A JSON form of an output that keeps what JSON alone would blur (tuples, Files...)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, tuple):
        return {"tuple": [normalize(v) for v in value]}
    if isinstance(value, set | frozenset):
        return {"set": sorted((normalize(v) for v in value), key=repr)}
    if isinstance(value, bytes):
        return {"bytes": value.decode("latin-1")}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: normalize(v) for k, v in value.items()}
        return {"dict": [[normalize(k), normalize(v)] for k, v in value.items()]}
    content = getattr(value, "content", None)
    if isinstance(content, bytes) and isinstance(getattr(value, "content_type", None), str):
        return {"File": {"content": content.decode("latin-1"), "type": value.content_type}}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return {"model": type(value).__name__, "fields": normalize(dump(mode="json"))}
    return {"unexpected_type": type(value).__name__}


def failure(phase: str, exc: BaseException) -> dict[str, Any]:
    outcome: dict[str, Any] = {"phase": phase, "raised": type(exc).__name__, "str": str(exc)}
    if type(exc).__name__ == "RequestError":  # the SDK defines RequestError.message
        outcome["message"] = getattr(exc, "message", None)
    return outcome


def main() -> None:
    mode, program = sys.argv[1], Path(sys.argv[2]).resolve()
    skip = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # everything else printed goes to stderr
    sys.stdout = sys.stderr

    def emit(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj, sort_keys=True) + "\n")
        out.flush()

    if os.environ.get("COVE_PARITY_ALIAS"):  # Cove's documented line, on Cove's sides
        importlib.import_module(os.environ["COVE_PARITY_ALIAS"])
    import tensorlake.applications as tl

    run = tl.run_local_application if mode == "local" else tl.run_remote_application
    sys.path.insert(0, str(program.parent))
    spec = importlib.util.spec_from_file_location(program.stem, program)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[program.stem] = module
    try:
        spec.loader.exec_module(module)
        emit({"import": {"phase": "import", "value": "ok"}})
        imported = True
    except BaseException as exc:
        traceback.print_exc()
        emit({"import": failure("import", exc)})
        imported = False
    for case in list(getattr(module, "CASES", []))[skip:]:
        name = case["name"]
        emit({"start": name, "str": bool(case.get("str"))})
        if not imported:
            emit({"case": name, "outcome": {"phase": "import", "value": "not run"}})
            continue
        target = case["app"] if case.get("by_name") else getattr(module, case["app"])
        try:
            request = run(target, *case.get("args", ()), **case.get("kwargs", {}))
        except Exception as exc:
            traceback.print_exc()
            emit({"case": name, "outcome": failure("call", exc)})
            continue
        try:
            outcome = {"phase": "output", "value": normalize(request.output())}
        except Exception as exc:
            outcome = failure("output", exc)
        emit({"case": name, "outcome": outcome})
    out.close()
    os._exit(0)  # the reference leaves threads behind; do not wait for them


if __name__ == "__main__":
    main()
