"""End to end: the ``cove`` command line against a real ``cove server`` subprocess."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cove.cli.main import app as cli_app

pytestmark = pytest.mark.slow

COMMANDS = [
    "server",
    "dev",
    "deploy",
    "apps",
    "delete",
    "invoke",
    "requests",
    "request",
    "output",
]

APPS_SOURCE = """
import time

from cove import File, application, function


@application()
@function()
def cli_ping() -> str:
    return "pong"


@application()
@function()
def cli_shout(text: str) -> str:
    return text.upper()


@application()
@function()
def cli_combine(a: int, b: str, tags: list[str] | None = None) -> dict:
    return {"a": a, "b": b, "tags": tags or []}


@application()
@function()
def cli_upper_file(doc: File) -> File:
    return File(doc.content.upper(), "text/plain")


@function()
def cli_explode(x: int) -> int:
    raise ValueError(f"boom {x}")


@application()
@function()
def cli_broken(x: int) -> int:
    return cli_explode(x)


@application()
@function()
def cli_slow(seconds: float) -> str:
    time.sleep(seconds)
    return "done"
"""

BAD_DECORATOR_SOURCE = """
from cove import application, function


@application()
@function(cpu=0)
def greedy() -> str:
    return "too much"
"""

DOOMED_SOURCE = """
from cove import application, function


@application()
@function()
def cli_doomed() -> int:
    return 1
"""


# -- helpers ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cove(
    *args: str, env: dict[str, str] | None = None, timeout: float = 90.0
) -> subprocess.CompletedProcess[str]:
    """Run the ``cove`` CLI in a subprocess (venv-independent: this interpreter)."""
    full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    full_env.pop("COVE_URL", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "cove.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr


class Server:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(data_dir: Path, log: Path, *extra: str) -> Server:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cove.cli.main",
                "server",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        )
    server = Server(process, url, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"cove server exited with {process.returncode}:\n{server.log_text()}"
            )
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"cove server did not answer /healthz in 30 s:\n{server.log_text()}")


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)


# -- fixtures -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    (root / "cli_apps.py").write_text(APPS_SOURCE)
    (root / "bad_decorator.py").write_text(BAD_DECORATOR_SOURCE)
    (root / "doomed.py").write_text(DOOMED_SOURCE)
    (root / "input.txt").write_text("hello file\n")
    return root


@pytest.fixture(scope="module")
def server(workdir: Path) -> Iterator[Server]:
    srv = start_server(workdir / "data", workdir / "server.log")
    try:
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture(scope="module")
def deployed(server: Server, workdir: Path) -> subprocess.CompletedProcess[str]:
    result = cove("deploy", str(workdir / "cli_apps.py"), "--server", server.url)
    assert result.returncode == 0, result.stderr
    return result


# -- tests --------------------------------------------------------------------------------
def test_help_lists_every_command() -> None:
    result = cove("--help")
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert re.search(rf"\b{command}\b", result.stdout), command
    runner = CliRunner()
    for command in COMMANDS:
        sub = runner.invoke(cli_app, [command, "--help"])
        assert sub.exit_code == 0, (command, sub.output)
        assert "Usage" in sub.output


def test_deploy_prints_url_and_curl(
    deployed: subprocess.CompletedProcess[str], server: Server
) -> None:
    out = deployed.stdout
    for name in ("cli_ping", "cli_shout", "cli_combine", "cli_upper_file", "cli_broken"):
        assert f"{server.url}/applications/{name}" in out
    # Each printed line runs as printed and waits for the output (?wait=).
    assert f"curl -X POST '{server.url}/applications/cli_ping?wait=30'\n" in out
    assert (
        f"curl -X POST '{server.url}/applications/cli_shout?wait=30' "
        "-H 'Content-Type: application/json' -d '\"text\"'"
    ) in out
    assert "-F a=1" in out and "-F 'b=\"text\"'" in out
    # A File part with sample text that works as printed, and how to send a file instead.
    assert "-F 'doc=Cove keeps notes.;type=text/plain'" in out
    assert "# a file from disk instead: -F doc=@path/to/doc" in out


def test_invoke_without_arguments(deployed: object, server: Server) -> None:
    result = cove("invoke", "cli_ping", "--wait", "--server", server.url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == "pong"
    assert re.search(r"Request \w+", result.stderr)


def test_invoke_json_uses_cove_url(deployed: object, server: Server) -> None:
    result = cove("invoke", "cli_shout", "--json", '"hi there"', env={"COVE_URL": server.url})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == "HI THERE"


def test_invoke_args_multipart(deployed: object, server: Server) -> None:
    result = cove(
        "invoke",
        "cli_combine",
        "--arg",
        "a=3",
        "--arg",
        "b=plain words",
        "--arg",
        'tags=["x","y"]',
        "--server",
        server.url,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"a": 3, "b": "plain words", "tags": ["x", "y"]}


def test_invoke_file_in_file_out(deployed: object, server: Server, workdir: Path) -> None:
    out_path = workdir / "out" / "upper.txt"
    result = cove(
        "invoke",
        "cli_upper_file",
        "--file",
        f"doc={workdir / 'input.txt'}",
        "--out",
        str(out_path),
        "--server",
        server.url,
    )
    assert result.returncode == 0, result.stderr
    assert out_path.read_text() == "HELLO FILE\n"

    described = cove(
        "invoke",
        "cli_upper_file",
        "--file",
        f"doc={workdir / 'input.txt'}",
        "--server",
        server.url,
    )
    assert described.returncode == 0, described.stderr
    assert "11 bytes" in described.stdout and "text/plain" in described.stdout


def test_failed_request_names_the_function(deployed: object, server: Server) -> None:
    result = cove("invoke", "cli_broken", "--json", "7", "--server", server.url)
    assert result.returncode == 1
    assert "cli_explode" in result.stderr and "boom 7" in result.stderr
    no_traceback(result)


def test_requests_list_request_and_output_by_id(deployed: object, server: Server) -> None:
    started = cove("invoke", "cli_shout", "--json", '"by id"', "--no-wait", "--server", server.url)
    assert started.returncode == 0, started.stderr
    request_id = started.stdout.strip()
    assert re.fullmatch(r"\w+", request_id), started.stdout

    output = cove("output", "cli_shout", request_id, "--wait", "30", "--server", server.url)
    assert output.returncode == 0, output.stderr
    assert json.loads(output.stdout) == "BY ID"

    listing = cove("requests", "cli_shout", "--limit", "10", "--server", server.url)
    assert listing.returncode == 0, listing.stderr
    assert request_id in listing.stdout and "succeeded" in listing.stdout

    detail = cove("request", "cli_shout", request_id, "--server", server.url)
    assert detail.returncode == 0, detail.stderr
    assert request_id in detail.stdout and "Function calls" in detail.stdout
    assert "cli_shout" in detail.stdout

    raw = cove("request", "cli_shout", request_id, "--json", "--server", server.url)
    assert json.loads(raw.stdout)["status"] == "succeeded"


def test_invoke_idempotency_key(deployed: object, server: Server) -> None:
    args = ["invoke", "cli_shout", "--json", '"once"', "--no-wait", "--server", server.url]
    first = cove(*args, "--idempotency-key", "cli-key-1")
    second = cove(*args, "--idempotency-key", "cli-key-1")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout.strip() == second.stdout.strip()


def test_output_of_failed_and_unfinished_requests(deployed: object, server: Server) -> None:
    failed = cove("invoke", "cli_broken", "--json", "1", "--no-wait", "--server", server.url)
    failed_id = failed.stdout.strip()
    result = cove("output", "cli_broken", failed_id, "--wait", "30", "--server", server.url)
    assert result.returncode == 1
    assert "cli_explode" in result.stderr
    no_traceback(result)

    slow = cove("invoke", "cli_slow", "--json", "5", "--no-wait", "--server", server.url)
    pending = cove("output", "cli_slow", slow.stdout.strip(), "--server", server.url)
    assert pending.returncode == 2
    assert "still running" in pending.stderr

    missing = cove("output", "cli_slow", "no-such-request", "--server", server.url)
    assert missing.returncode == 1
    assert "no-such-request" in missing.stderr
    no_traceback(missing)


def test_deploy_bad_decorator_fails_cleanly(server: Server, workdir: Path) -> None:
    result = cove("deploy", str(workdir / "bad_decorator.py"), "--server", server.url)
    assert result.returncode == 1
    assert "greedy" in result.stderr and "cpu" in result.stderr
    no_traceback(result)


def test_apps_and_delete(server: Server, workdir: Path) -> None:
    deployed = cove("deploy", str(workdir / "doomed.py"), "--server", server.url)
    assert deployed.returncode == 0, deployed.stderr
    listed = cove("apps", "--server", server.url)
    assert listed.returncode == 0 and "cli_doomed" in listed.stdout
    deleted = cove("delete", "cli_doomed", "--yes", "--server", server.url)
    assert deleted.returncode == 0, deleted.stderr
    assert "cli_doomed" not in cove("apps", "--server", server.url).stdout
    again = cove("invoke", "cli_doomed", "--server", server.url)
    assert again.returncode == 1 and "not deployed" in again.stderr


def test_unreachable_server_is_one_clear_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args, env in (
        (["apps", "--server", url], None),
        (["invoke", "anything", "--json", "1"], {"COVE_URL": url}),
    ):
        result = cove(*args, env=env)
        assert result.returncode == 1
        assert "cannot reach the Cove server" in result.stderr and url in result.stderr
        assert result.stderr.strip().count("\n") == 0, result.stderr
        no_traceback(result)


def test_invalid_options_fail_cleanly(server: Server) -> None:
    bad_json = cove("invoke", "cli_shout", "--json", "not json", "--server", server.url)
    assert bad_json.returncode == 1 and "not valid JSON" in bad_json.stderr
    bad_arg = cove("invoke", "cli_combine", "--arg", "novalue", "--server", server.url)
    assert bad_arg.returncode == 1 and "NAME=VALUE" in bad_arg.stderr
    missing_file = cove("deploy", "/nonexistent/app.py", "--server", server.url)
    assert missing_file.returncode == 1
    no_traceback(missing_file)


def test_server_deploy_dir(tmp_path: Path) -> None:
    apps_dir = tmp_path / "examples"
    apps_dir.mkdir()
    (apps_dir / "doomed.py").write_text(DOOMED_SOURCE)
    (apps_dir / "bad_decorator.py").write_text(BAD_DECORATOR_SOURCE)
    (apps_dir / "helpers.py").write_text("VALUE = 1\n")  # no application: not deployed
    srv = start_server(tmp_path / "data", tmp_path / "server.log", "--deploy", str(apps_dir))
    try:
        deadline = time.monotonic() + 40
        names: list[str] = []
        while time.monotonic() < deadline:
            apps = httpx.get(f"{srv.url}/applications", timeout=5).json()["applications"]
            names = [a["name"] for a in apps]
            if "cli_doomed" in names and "greedy" in srv.log_text():
                break
            time.sleep(0.2)
        assert names == ["cli_doomed"], srv.log_text()
        log = srv.log_text()
        assert "Deployed cli_doomed" in log
        assert "Warning" in log and "bad_decorator.py" in log and "cpu" in log
        assert "helpers.py" not in log
        result = cove("invoke", "cli_doomed", "--server", srv.url)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == 1
    finally:
        stop_server(srv)
