"""Tensorlake SDK names on Cove: the ``tensorlake.applications`` alias and the names Cove
adds for it (HttpBody, Headers, Logger, RequestState, FunctionProgress, errors)."""

from __future__ import annotations

import importlib
import json
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import cove
from cove import (
    File,
    FunctionProgress,
    Headers,
    HttpBody,
    Logger,
    RequestContext,
    RequestState,
    SDKUsageError,
    application,
    function,
    run_local_application,
)
from cove.sdk import tensorlake_alias
from cove.sdk.manifest import load_module, module_manifest

#: ``tensorlake.applications.interface.__all__`` of the Tensorlake SDK (0.5.163).
TENSORLAKE_NAMES = sorted(
    [
        "application",
        "ApplicationCapability",
        "cls",
        "run_local_application",
        "run_remote_application",
        "function",
        "DeserializationError",
        "File",
        "Function",
        "Future",
        "Headers",
        "HttpBody",
        "FunctionError",
        "TimeoutError",
        "FunctionProgress",
        "Image",
        "InternalError",
        "RemoteAPIError",
        "Request",
        "RequestContext",
        "RequestFailed",
        "RequestState",
        "RequestError",
        "RequestNotFinished",
        "Retries",
        "RETURN_WHEN",
        "SDKUsageError",
        "SerializationError",
        "Logger",
        "TensorlakeException",
        "TensorlakeError",
    ]
)


@pytest.fixture
def alias() -> Iterator[None]:
    """The alias installed, and this process's import state as it was afterwards."""
    meta_path, path = list(sys.meta_path), list(sys.path)
    before = {n: m for n, m in sys.modules.items() if n.split(".")[0] == "tensorlake"}
    tensorlake_alias.install()
    yield
    for name in [n for n in sys.modules if n.split(".")[0] == "tensorlake"]:
        del sys.modules[name]
    sys.modules.update(before)
    sys.meta_path[:], sys.path[:] = meta_path, path


# -- the alias -----------------------------------------------------------------------------
@pytest.mark.usefixtures("alias")
def test_every_tensorlake_name_is_coves() -> None:
    tl = importlib.import_module("tensorlake.applications")
    assert sorted(tl.__all__) == TENSORLAKE_NAMES
    for name in TENSORLAKE_NAMES:
        assert getattr(tl, name) is getattr(cove, name), name
    namespace: dict[str, Any] = {}
    exec("from tensorlake.applications import *", namespace)
    assert sorted(n for n in namespace if n != "__builtins__") == TENSORLAKE_NAMES
    exec("import tensorlake.applications as tl2; from tensorlake import applications", namespace)
    assert namespace["tl2"] is tl and namespace["applications"] is tl
    assert importlib.import_module("tensorlake").Image is cove.Image


@pytest.mark.usefixtures("alias")
def test_other_tensorlake_modules_say_cove_serves_only_applications() -> None:
    for name in ("tensorlake.documentai", "tensorlake.applications.interface"):
        with pytest.raises(ModuleNotFoundError, match=r"only tensorlake\.applications"):
            importlib.import_module(name)


def test_the_alias_wins_over_an_installed_and_imported_tensorlake(
    tmp_path: Path, alias: None
) -> None:
    real = tmp_path / "tensorlake" / "applications"
    real.mkdir(parents=True)
    (tmp_path / "tensorlake" / "__init__.py").write_text("REAL = True\n")
    (real / "__init__.py").write_text("REAL = True\n")
    sys.path.insert(0, str(tmp_path))
    finder = type(tensorlake_alias._FINDER)
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, finder)]
    for name in [n for n in sys.modules if n.split(".")[0] == "tensorlake"]:
        del sys.modules[name]
    assert importlib.import_module("tensorlake.applications").REAL  # the real one, first
    tensorlake_alias.install()  # as Cove's loader does before it imports a user's file
    tl = importlib.import_module("tensorlake.applications")
    assert not hasattr(tl, "REAL") and tl.function is cove.function
    tensorlake_alias.install()  # twice: one finder
    assert sum(isinstance(f, finder) for f in sys.meta_path) == 1


TENSORLAKE_FILE = """
from tensorlake.applications import HttpBody, RequestContext, application, function

@function()
def double(x: int) -> int:
    return 2 * x

@application()
@function()
def tl_double(x: int) -> dict:
    return {"value": double(x), "headers": dict(RequestContext.get().headers)}

@application()
@function()
def tl_body(body: HttpBody) -> str:
    return f"{body.content_type}:{body.text()}"
"""


def test_the_code_loader_serves_tensorlake_to_the_files_it_imports(tmp_path: Path) -> None:
    # A fresh interpreter, as each process Cove starts is (inspection, template, container).
    path = tmp_path / "tl_loaded.py"
    path.write_text(TENSORLAKE_FILE)
    script = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        from cove.sdk.manifest import load_module, module_manifest
        module = load_module(Path({str(path)!r}))
        manifest = module_manifest(module.__name__)
        params = [p for a in manifest["applications"] for p in a["parameters"]]
        print(json.dumps([manifest["module"], params]))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    module_name, params = json.loads(result.stdout)
    assert module_name == "tl_loaded"
    by_name = {p["name"]: p for p in params}
    assert by_name["body"]["is_file"] and by_name["body"]["raw_body"]
    assert "raw_body" not in by_name["x"]


def test_cove_tensorlake_module_runs_a_file_as_main(tmp_path: Path) -> None:
    path = tmp_path / "script.py"
    path.write_text(
        TENSORLAKE_FILE
        + textwrap.dedent(
            """
            import sys
            from tensorlake.applications import run_local_application
            if __name__ == "__main__":
                print(sys.argv[1:], run_local_application(tl_double, int(sys.argv[1])).output())
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "cove.tensorlake", str(path), "21"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['21'] {'value': 42, 'headers': {}}"
    usage = subprocess.run(
        [sys.executable, "-m", "cove.tensorlake"], capture_output=True, text=True
    )
    assert usage.returncode == 2 and "usage: python -m cove.tensorlake FILE.py" in usage.stdout


# -- HttpBody ------------------------------------------------------------------------------
def test_http_body() -> None:
    body = HttpBody(b'{"a": [1]}', "application/json")
    assert body.content == b'{"a": [1]}' and body.content_type == "application/json"
    assert body.text() == '{"a": [1]}' and body.json() == {"a": [1]}
    assert HttpBody("é".encode("latin-1"), None).text("latin-1") == "é"
    assert HttpBody(b"x" * 30).content_type is None
    assert str(HttpBody(b"x" * 30, "t")) == f"HttpBody(content_type=t, content={b'x' * 20!r}...)"
    assert pickle.loads(pickle.dumps(body)).json() == {"a": [1]}


@pytest.fixture(scope="module")
def raw_app(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    path = tmp_path_factory.mktemp("apps") / "tl_raw_unit.py"
    path.write_text(TENSORLAKE_FILE)
    return load_module(path)


def test_http_body_parameter_locally(raw_app: ModuleType) -> None:
    out = run_local_application(raw_app.tl_body, HttpBody(b"[1]", "application/json")).output()
    assert out == "application/json:[1]"
    # A File for it is its bytes and content type.
    assert run_local_application(raw_app.tl_body, File(b"hi", "text/plain")).output() == (
        "text/plain:hi"
    )
    assert module_manifest(raw_app.__name__)["applications"][1]["parameters"][0]["raw_body"]


def test_http_body_is_no_return_type() -> None:
    # Refused with SDKUsageError, as by the SDK (Cove checks when the decorator is applied).
    with pytest.raises(SDKUsageError, match="return type hint is HttpBody"):

        @application()
        @function()
        def answers_raw() -> HttpBody:
            return HttpBody(b"")

        run_local_application(answers_raw)


# -- Headers -------------------------------------------------------------------------------
def test_headers_are_case_insensitive_and_keep_repeats() -> None:
    headers = Headers([("X-Trace", "1"), ("Accept", "a"), ("x-trace", "2")])
    assert headers["x-TRACE"] == "2" and headers.get("X-Trace") == "2"
    assert headers.getlist("X-TRACE") == ["1", "2"] and headers.getlist("nope") == []
    assert list(headers) == ["X-Trace", "Accept"] and len(headers) == 2
    assert "accept" in headers and 1 not in headers and headers.get("nope", "d") == "d"
    assert headers.multi_items() == [("X-Trace", "1"), ("Accept", "a"), ("x-trace", "2")]
    assert dict(Headers({"A": "1"})) == {"A": "1"} and len(Headers()) == 0
    with pytest.raises(KeyError):
        headers["nope"]


def test_headers_and_context_types_in_a_local_call() -> None:
    @application()
    @function()
    def looks_around() -> list[Any]:
        ctx = RequestContext.get()
        return [
            type(ctx.headers).__name__,
            len(ctx.headers),
            isinstance(ctx.state, RequestState),
            isinstance(ctx.progress, FunctionProgress),
        ]

    assert run_local_application(looks_around).output() == ["Headers", 0, True, True]


# -- Logger --------------------------------------------------------------------------------
def test_logger_writes_one_json_line_with_bound_fields(capsys: pytest.CaptureFixture[str]) -> None:
    root = Logger.get_logger(app="a")
    bound = root.bind(user="u", n=1)
    bound.info("done", count=3, where=Path("/x"))
    root.warning("plain")
    try:
        raise ValueError("bad")
    except ValueError:
        bound.error("failed", exc_info=True)
    bound.debug("caught", exc_info=KeyError("k"))
    first, second, third, fourth = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert first.pop("timestamp").endswith("Z")
    assert first == {
        "app": "a",
        "user": "u",
        "n": 1,
        "count": 3,
        "where": "/x",  # not JSON: its str()
        "level": "info",
        "event": "done",
    }
    assert {k: second[k] for k in ("app", "level", "event")} == {
        "app": "a",
        "level": "warning",
        "event": "plain",
    }
    assert "user" not in second  # binding made a new logger
    assert third["level"] == "error" and "ValueError: bad" in third["exception"]
    assert "exc_info" not in third
    assert fourth["level"] == "debug" and "KeyError: 'k'" in fourth["exception"]


def test_logger_never_raises(capsys: pytest.CaptureFixture[str]) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert Logger.get_logger().info("odd", value=Unprintable()) is None
    assert "could not write 'odd'" in capsys.readouterr().out


# -- errors --------------------------------------------------------------------------------
def test_tensorlake_error_names() -> None:
    assert cove.TensorlakeError is cove.CoveError and cove.TensorlakeException is cove.CoveError
    with pytest.raises(cove.TensorlakeError):
        raise SDKUsageError("x")
    assert str(cove.RequestNotFinished()) == (
        "Request is still in progress, its output is not ready yet."
    )
    err = cove.RemoteAPIError(404, "no such application")
    assert str(err) == "no such application (Status Code: 404)" and err.status_code == 404
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cove.RemoteAPIError and str(back) == str(err)
    assert isinstance(cove.InternalError("x"), cove.CoveError)
    assert cove.ApplicationCapability.__args__ == ("unauthenticated_requests",)
