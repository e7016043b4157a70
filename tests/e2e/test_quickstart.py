"""The README's quick start, run as a new user runs it: a fresh clone of this repository, the
README's own commands (taken from README.md between markers, so the README and this test
cannot drift apart), relative paths and default settings, only the port moved to a free one.
Then every example answers, through the curl lines of its docstring, the curl line the
server printed when it deployed it, and the CLI.

The clone is of the committed HEAD: uncommitted changes are not in it.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.local_runtime_only,
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl"),
    pytest.mark.skipif(shutil.which("git") is None, reason="needs git"),
]
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
README = ROOT / "README.md"
#: pip installs the clone's dependencies the first time: minutes on a cold cache.
INSTALL_DEADLINE = 900.0


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


def readme_block(name: str) -> str:
    """The code inside README.md's ``<!-- quickstart:NAME:begin -->`` … ``end`` markers."""
    text = README.read_text()
    match = re.search(
        rf"<!-- quickstart:{name}:begin -->\s*```\w*\n(.*?)```\s*<!-- quickstart:{name}:end -->",
        text,
        re.S,
    )
    assert match, f"README.md has no quickstart:{name} block between markers"
    return match.group(1)


def readme_session() -> list[tuple[str, list[str]]]:
    """The README's console block: (command, the output lines shown under it)."""
    steps: list[tuple[str, list[str]]] = []
    for line in readme_block("try").splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif line.strip():
            assert steps, f"output before any command in the README: {line!r}"
            steps[-1][1].append(line.rstrip())
    assert steps
    return steps


def clean_env(**extra: str) -> dict[str, str]:
    """A new user's environment: no COVE_* setting of the test run leaks into the clone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COVE_", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


@dataclass
class QuickStart:
    folder: Path  # the fresh clone, where the README's commands run
    url: str
    log: Path  # what `cove server` printed

    def output(self) -> str:
        return self.log.read_text()


def start_in_shell(
    command: str, cwd: Path, log: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            ["bash", "-c", command], cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )  # fmt: skip


def wait_for_line(
    process: subprocess.Popen[bytes], log: Path, pattern: str, deadline: float
) -> str:
    """The first line of ``log`` matching ``pattern``; fails if the process ends first."""
    end = time.monotonic() + deadline
    while True:
        found = re.search(pattern, log.read_text(errors="replace"), re.M)
        if found:
            return found.group(0)
        assert process.poll() is None, (
            f"exited with {process.returncode}:\n{log.read_text()[-4000:]}"
        )
        assert time.monotonic() < end, f"no line {pattern!r} in time:\n{log.read_text()[-4000:]}"
        time.sleep(0.2)  # a subprocess's output: polled, there is nothing to await


def stop(process: subprocess.Popen[bytes], data_dir: Path) -> None:
    """Ctrl-C, as a user stops it; then whatever container a failed test left behind."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    for record in (data_dir / "containers").glob("*"):
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            os.killpg(int(record.name), signal.SIGKILL)


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuickStart]:
    folder = tmp_path_factory.mktemp("newcomer") / "cove"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(folder)], check=True, timeout=120)
    port = free_port()
    command = readme_block("server").strip()
    assert "\n" not in command, "the quick start is one command line"
    log = folder.parent / "server.log"
    process = start_in_shell(f"{command} --port {port}", folder, log, clean_env())
    try:
        wait_for_line(process, log, r"^Ready: \d+ applications? deployed", INSTALL_DEADLINE)
        yield QuickStart(folder, f"http://127.0.0.1:{port}", log)
    finally:
        stop(process, folder / ".cove")


@pytest.fixture(scope="module")
def server(quickstart: QuickStart) -> str:
    return quickstart.url


def test_the_readme_session_prints_what_the_readme_shows(quickstart: QuickStart) -> None:
    port = quickstart.url.rsplit(":", 1)[1]
    for command, shown in readme_session():
        result = subprocess.run(
            ["bash", "-c", command.replace("127.0.0.1:8900", f"127.0.0.1:{port}")],
            cwd=quickstart.folder,
            env=clean_env(COVE_URL=quickstart.url, COLUMNS="200"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        if shown:
            assert result.stdout.strip().splitlines() == shown, command
    # What the README says of the commands it shows no output for.
    apps = subprocess.run(
        [".venv/bin/cove", "apps"], cwd=quickstart.folder, capture_output=True, text=True,
        env=clean_env(COVE_URL=quickstart.url, COLUMNS="200"), check=True,
    ).stdout  # fmt: skip
    for name in ("hello_world", "greet", "customer_profile", "shopping_cart"):
        assert name in apps
    requests = httpx.get(f"{quickstart.url}/applications/greet/requests").json()["requests"]
    listed = subprocess.run(
        [".venv/bin/cove", "requests", "greet"], cwd=quickstart.folder, capture_output=True,
        text=True, env=clean_env(COVE_URL=quickstart.url, COLUMNS="200"), check=True,
    ).stdout  # fmt: skip
    assert len(requests) >= 2 and all(r["id"] in listed for r in requests)
    assert "succeeded" in listed


def test_the_data_folder_is_the_relative_one_the_readme_names(quickstart: QuickStart) -> None:
    assert (quickstart.folder / ".cove" / "cove.db").is_file()
    assert "(data: .cove)" in quickstart.output()


def test_ready_line_counts_what_the_readme_says(quickstart: QuickStart) -> None:
    said = re.search(r"`Ready: (\d+) applications deployed`", README.read_text())
    assert said, "the README names how many applications the quick start deploys"
    deployed = httpx.get(f"{quickstart.url}/applications").json()["applications"]
    assert len(deployed) == int(said.group(1))
    assert f"Ready: {said.group(1)} applications deployed" in quickstart.output()


def printed_curl_lines(output: str) -> dict[str, str]:
    """Per application, the curl line ``cove server`` printed under "Invoke:"."""
    found: dict[str, str] = {}
    lines = output.splitlines()
    for i, line in enumerate(lines):
        deployed = re.match(r"Deployed (\w+) \(version", line)
        if not deployed:
            continue
        start = next(k for k in range(i + 1, len(lines)) if lines[k].strip() == "Invoke:") + 1
        command = lines[start].strip()
        k = start
        while command.endswith("\\"):
            k += 1
            command = command.removesuffix("\\") + " " + lines[k].strip()
        found[deployed.group(1)] = command
    return found


def test_every_printed_curl_line_runs_as_printed(quickstart: QuickStart, tmp_path: Path) -> None:
    printed = printed_curl_lines(quickstart.output())
    deployed = httpx.get(f"{quickstart.url}/applications").json()["applications"]
    assert set(printed) == {a["name"] for a in deployed}
    failed = {}
    for app, command in printed.items():
        assert command.startswith("curl ") and f"{quickstart.url}/applications/{app}" in command
        args = shlex.split(command, comments=True)
        args = [args[0], "-sS", "--fail-with-body", *args[1:]]
        result = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            failed[app] = (command, result.stdout, result.stderr)
        else:  # the output itself (?wait=), JSON or a File's bytes, not a request id to poll
            assert not result.stdout.startswith('{"request_id"'), (app, result.stdout)
    assert not failed, failed


def test_cove_deploy_of_a_relative_path_from_a_subfolder(quickstart: QuickStart) -> None:
    work = quickstart.folder / "mine"
    (work / "apps").mkdir(parents=True)
    (work / "apps" / "shouter.py").write_text(SHOUTER.format(suffix="!"))
    result = subprocess.run(
        ["../.venv/bin/cove", "deploy", "./apps/shouter.py"], cwd=work, capture_output=True,
        text=True, env=clean_env(COVE_URL=quickstart.url), timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = httpx.post(f"{quickstart.url}/applications/shout?wait=60", json="quiet", timeout=90)
    assert out.status_code == 200 and out.json() == "QUIET!", out.text


SHOUTER = """
from cove import application, function


@function()
def louder(text: str) -> str:
    return text.upper() + "{suffix}"


@application()
@function()
def shout(text: str) -> str:
    return louder(text)
"""


def test_cove_dev_with_relative_paths_serves_and_redeploys(quickstart: QuickStart) -> None:
    work = quickstart.folder / "dev"
    (work / "apps").mkdir(parents=True)
    source = work / "apps" / "shouter.py"
    source.write_text(SHOUTER.format(suffix="!"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = work.parent / "dev.log"
    process = start_in_shell(
        f"../.venv/bin/cove dev apps/shouter.py --port {port}", work, log, clean_env()
    )
    try:
        wait_for_line(process, log, r"^Ready: 1 application deployed", 120)
        first = httpx.post(f"{url}/applications/shout?wait=60", json="a", timeout=90)
        assert first.json() == "A!", first.text
        assert (work / ".cove" / "cove.db").is_file()  # relative to where `cove dev` ran
        source.write_text(SHOUTER.format(suffix="?"))
        wait_for_line(process, log, r"^Deployed shout \(version 2\)", 60)
        second = httpx.post(f"{url}/applications/shout?wait=60", json="b", timeout=90)
        assert second.json() == "B?", second.text
    finally:
        stop(process, work / ".cove")


def test_relative_data_dir_blob_url_and_deploy_folder_from_a_subfolder(
    quickstart: QuickStart,
) -> None:
    """``COVE_DATA_DIR`` and ``COVE_BLOB_URL=file:…`` relative, ``--deploy ../examples/``."""
    work = quickstart.folder / "elsewhere"
    work.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = work.parent / "elsewhere.log"
    env = clean_env(COVE_DATA_DIR="state", COVE_BLOB_URL="file:shared-blobs")
    process = start_in_shell(
        f"../.venv/bin/cove server --port {port} --deploy ../examples/", work, log, env
    )
    try:
        wait_for_line(process, log, r"^Ready: \d+ applications deployed", 120)
        # A payload over the inline limit and a File both go through the blob store, from
        # the server and from inside the containers.
        words = ["durable"] * 5000  # about 50 KB each way
        out = httpx.post(f"{url}/applications/inspect_json?wait=60", json=words, timeout=90)
        assert out.status_code == 200, out.text[:500]
        assert out.json() == {"type": "list", "size": 5000, "value": words}
        upload = httpx.post(
            f"{url}/applications/uppercase?wait=60",
            files={"file": ("notes.txt", b"cove keeps notes", "text/plain")},
            timeout=90,
        )
        assert upload.status_code == 200 and upload.content == b"COVE KEEPS NOTES", upload.text
        assert (work / "state" / "cove.db").is_file()
        assert any((work / "shared-blobs").rglob("*"))
        assert not (work / "state" / "blobs").exists()
    finally:
        stop(process, work / "state")


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
