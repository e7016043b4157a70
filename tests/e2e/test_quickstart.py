"""The README's quick start: ``cove server --deploy examples/``, then every curl line that
the examples' docstrings show, run with the real ``curl`` against the real server."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl"),
]
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def curl_lines() -> list[tuple[str, str, Any]]:
    """(example, command, expected JSON or None) for every invoke shown in a docstring."""
    found = []
    for path in sorted(EXAMPLES.glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        lines = [line.strip() for line in doc.splitlines()]
        i = 0
        while i < len(lines):
            if not lines[i].startswith("curl"):
                i += 1
                continue
            command = lines[i]
            i += 1
            while command.endswith("\\") or _unclosed(command):
                command = command.removesuffix("\\") + " " + lines[i]
                i += 1
            comment = []
            while i < len(lines) and lines[i].startswith("#"):
                comment.append(lines[i][1:].strip())
                i += 1
            if "code=@" in command or "<id>" in command:
                continue  # deploys (the server deploys examples/ itself), placeholders
            try:
                expected = json.loads(" ".join(comment)) if comment else None
            except ValueError:
                expected = None
            found.append((path.stem, command, expected))
    return found


def _unclosed(command: str) -> bool:
    try:
        shlex.split(command, comments=True)
    except ValueError:  # a quoted argument goes on over the next line
        return True
    return False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("quickstart")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "cove.cli.main",
        "server",
        "--port",
        str(port),
        "--data-dir",
        str(data),
        "--deploy",
        "examples/",
    ]
    log = open(data / "server.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    wanted = {cmd.split("/applications/")[1].split("?")[0] for _, cmd, _ in curl_lines()}
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (data / "server.log").read_text()[-3000:]
            try:
                apps = httpx.get(url + "/applications", timeout=2).json()["applications"]
                if wanted <= {a["name"] for a in apps}:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "examples were not all deployed"
            time.sleep(0.1)  # deploys happen in the server's own time: poll the API
        yield url
    finally:
        process.kill()
        process.wait()
        log.close()
        for record in (data / "containers").glob("*"):
            with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
                os.killpg(int(record.name), signal.SIGKILL)


@pytest.mark.parametrize(
    ("example", "command", "expected"),
    curl_lines(),
    ids=lambda v: v if isinstance(v, str) and "/" not in v else "",
)
def test_curl_line_from_the_examples_works(
    server: str, tmp_path: Path, example: str, command: str, expected: Any
) -> None:
    (tmp_path / "notes.txt").write_text("Cove keeps notes.\nDurable notes.\n")
    args = shlex.split(command.replace("http://127.0.0.1:8900", server), comments=True)
    args = [args[0], "-sS", "--fail-with-body", *args[1:]]
    result = subprocess.run(args, cwd=tmp_path, capture_output=True, timeout=120)
    assert result.returncode == 0, (command, result.stdout, result.stderr)
    if expected is not None:
        assert json.loads(result.stdout) == expected, command


def test_every_example_shows_how_to_call_it() -> None:
    shown = {example for example, _, _ in curl_lines()}
    assert shown == {p.stem for p in EXAMPLES.glob("*.py")}


def _cli_args(command: str) -> list[str] | None:
    """The ``cove invoke`` arguments that send what a curl line sends (None: no equivalent)."""
    args = shlex.split(command, comments=True)
    url = next(a for a in args if "/applications/" in a)
    out = [url.split("/applications/")[1].split("?")[0]]
    it = iter(args[1:])
    for arg in it:
        if arg in ("-d", "--data", "--data-binary"):
            value = next(it)
            if value.startswith("@"):
                return None
            out += ["--json", value]
        elif arg == "-F":
            name, value = next(it).split("=", 1)
            if value.startswith("@"):
                out += ["--file", f"{name}={value[1:].split(';')[0]}"]
            else:
                out += ["--arg", f"{name}={value}"]
        elif arg in ("-H", "-X"):
            next(it)
    return out


@pytest.mark.parametrize(
    ("example", "command", "expected"),
    [case for case in curl_lines() if _cli_args(case[1]) is not None],
    ids=lambda v: v if isinstance(v, str) and "/" not in v else "",
)
def test_the_same_calls_through_the_cli(
    server: str, tmp_path: Path, example: str, command: str, expected: Any
) -> None:
    (tmp_path / "notes.txt").write_text("Cove keeps notes.\nDurable notes.\n")
    args = _cli_args(command)
    assert args is not None
    result = subprocess.run(
        [sys.executable, "-m", "cove.cli.main", "invoke", *args, "--server", server, "--wait"],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    if expected is not None:
        assert json.loads(result.stdout) == expected, args


@pytest.mark.parametrize(
    ("path", "curl_args", "status", "fragment"),
    [
        ("nope", ["-d", "1"], 404, "not deployed"),
        ("greet", ["-H", "Content-Type: application/json", "-d", "{oops"], 400, "not valid JSON"),
        ("greet", ["-H", "Content-Type: application/json", "-d", "42"], 400, "parameter 'name'"),
        ("process_data", ["-F", "operation=sum"], 400, "missing required argument 'numbers'"),
        (
            "customer_profile",
            ["-H", "Content-Type: application/json", "-d", '{"name": 1}'],
            400,
            "parameter 'customer'",
        ),
    ],
)
def test_bad_input_over_real_http(
    server: str, path: str, curl_args: list[str], status: int, fragment: str
) -> None:
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "-w",
            "\\n%{http_code}",
            "-X",
            "POST",
            f"{server}/applications/{path}",
            *curl_args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    body, code = result.stdout.rsplit("\n", 1)
    assert int(code) == status, body
    assert fragment in json.loads(body)["error"]["message"]
