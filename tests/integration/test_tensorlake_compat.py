"""Code written for the Tensorlake SDK (``from tensorlake.applications import ...``) runs on
Cove unchanged: deployed to a server (inspection, templates, containers), with ``cove run``
and with ``python -m cove.tensorlake`` — Cove's implementation behind those names even when
a real ``tensorlake`` package comes first on the path.

The stand-in for the real package (first on PYTHONPATH of every process started here)
raises when imported, so any process that picked it over Cove's would fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import APPS, ServerProcess, wait_until

APP = APPS / "tl_compat.py"


@pytest.fixture(scope="module")
def real_tensorlake(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment whose PYTHONPATH starts with a ``tensorlake`` package of its own."""
    root = tmp_path_factory.mktemp("site")
    package = root / "tensorlake" / "applications"
    package.mkdir(parents=True)
    (root / "tensorlake" / "__init__.py").write_text("")
    (package / "__init__.py").write_text(
        "raise ImportError('the installed tensorlake package was imported, not Cove\\'s')\n"
    )
    paths = [str(root), os.environ.get("PYTHONPATH", "")]
    env = {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    # The stand-in is what a plain interpreter with this environment imports.
    probe = subprocess.run(
        [sys.executable, "-c", "import tensorlake.applications"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert "the installed tensorlake package was imported" in probe.stderr
    return env


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, real_tensorlake: dict[str, str]
) -> Iterator[httpx.Client]:
    process = ServerProcess(tmp_path_factory.mktemp("data"), env=real_tensorlake).start()
    try:
        deployed = process.deploy(APP)
        names = {a["name"] for a in deployed["applications"]}  # type: ignore[index, union-attr]
        assert names == {"tl_greet", "tl_raw", "tl_headers", "tl_impl"}
        with process.client() as client:
            yield client
    finally:
        process.stop()


def _output(client: httpx.Client, app: str, **kwargs: Any) -> tuple[str, Any]:
    r = client.post(f"/applications/{app}", params={"wait": 60}, **kwargs)
    assert r.status_code == 200, r.text
    return r.headers["x-cove-request-id"], r.json()


def test_deployed_file_runs_on_coves_implementation(server: httpx.Client) -> None:
    _, out = _output(server, "tl_impl")
    assert out == {
        "function": "cove.sdk.decorators",
        "state": True,
        "progress": True,
        "base": "CoveError",
        "names": 31,
    }
    _, greeting = _output(server, "tl_greet", json="Ada")
    assert greeting == "HELLO, ADA! (HELLO, ADA)"


def test_http_body_parameter_receives_the_raw_body(server: httpx.Client) -> None:
    body = b'{"b": [1, 2], "a": 1}'  # JSON, yet passed as sent, not decoded
    _, out = _output(server, "tl_raw", content=body, headers={"Content-Type": "application/json"})
    assert out == {
        "content_type": "application/json",
        "text": body.decode(),
        "json": {"a": 1, "b": [1, 2]},
        "size": len(body),
    }
    _, out = _output(server, "tl_raw", content=b"[3]", headers={"Content-Type": "text/x-raw"})
    assert out["content_type"] == "text/x-raw" and out["json"] == [3]


def test_headers_reach_every_call_of_the_request(server: httpx.Client) -> None:
    headers = [("X-Trace", "one"), ("x-trace", "two"), ("Authorization", "Bearer secret")]
    _, out = _output(server, "tl_headers", headers=headers)
    assert out == {
        "is_headers": True,
        "x_trace": "two",
        "x_trace_all": ["one", "two"],
        "authorization": None,  # credentials never reach application code
        "child": "two",  # a child call sees the request's headers too
    }


def test_logger_lines_are_the_calls_logs(server: httpx.Client) -> None:
    rid, _ = _output(server, "tl_greet", json="Bo")
    url = f"/applications/tl_greet/requests/{rid}/logs"

    def shout_lines() -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = server.get(url, params={"function": "shout"}).json()["logs"]
        return lines

    wait_until(lambda: bool(shout_lines()), 30, "the shout call's log lines")
    [line] = shout_lines()
    assert line["stream"] == "stdout"
    record = json.loads(line["message"])
    assert record.pop("timestamp").endswith("Z")
    assert record == {
        "app": "tl_greet",
        "step": "shout",
        "size": 9,
        "level": "info",
        "event": "shouting",
    }


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        env={**os.environ, **env},
        cwd=APP.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cove_run_runs_it_without_a_server(real_tensorlake: dict[str, str]) -> None:
    result = _run(real_tensorlake, "-m", "cove.cli.main", "run", APP.name, "tl_greet", "Ada")
    assert result.returncode == 0, result.stderr
    *logged, output = result.stdout.strip().splitlines()
    assert json.loads(output) == "HELLO, ADA! (HELLO, ADA)"
    assert json.loads(logged[0])["event"] == "shouting"
    result = _run(
        real_tensorlake, "-m", "cove.cli.main", "run", APP.name, "tl_raw", "--arg", 'body={"a":1}'
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["json"] == {"a": 1}
    result = _run(real_tensorlake, "-m", "cove.cli.main", "run", APP.name, "tl_impl")
    assert json.loads(result.stdout)["function"] == "cove.sdk.decorators"


def test_cove_run_names_a_missing_application(real_tensorlake: dict[str, str]) -> None:
    result = _run(real_tensorlake, "-m", "cove.cli.main", "run", APP.name, "nope")
    assert result.returncode == 1
    assert "has no application 'nope'" in result.stderr
    assert "tl_greet" in result.stderr and "Traceback" not in result.stderr


def test_plain_python_runs_its_main_block(real_tensorlake: dict[str, str]) -> None:
    result = _run(real_tensorlake, "-m", "cove.tensorlake", APP.name)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[1] == "HELLO, ADA! (HELLO, ADA)"
    assert "'function': 'cove.sdk.decorators'" in lines[2]
