"""End to end: ``cove deploy`` and ``Client.deploy`` ship the deployed file's folder, so an
application spread over modules and packages runs on a real server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cove.errors import PayloadTooLargeError
from cove.sdk.client import Client
from tests.conftest import APPS, ServerProcess, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("bundle")
    srv = ServerProcess(root / "data").start()
    yield srv
    srv.kill()
    for record in (root / "data" / "containers").glob("*"):
        import contextlib
        import os
        import signal

        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            os.killpg(int(record.name), signal.SIGKILL)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "multimod"
    shutil.copytree(APPS / "multimod", target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def cove(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cove.cli.main", *args],
        capture_output=True, text=True, timeout=180, cwd=cwd,
    )  # fmt: skip


def call(server: ServerProcess, name: str) -> str:
    r = httpx.post(f"{server.url}/applications/multimod?wait=120", json=name, timeout=150)
    assert r.status_code == 200, r.text
    out: str = r.json()
    return out


def test_cove_deploy_of_a_file_ships_its_modules(server: ServerProcess, folder: Path) -> None:
    result = cove("deploy", "app.py", "--server", server.url, cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert call(server, "cli") == "HELLO, CLI! (helpers)"


def test_cove_deploy_of_a_folder_bundles_each_application_file(
    server: ServerProcess, folder: Path
) -> None:
    (folder / "helpers.py").write_text(
        (folder / "helpers.py").read_text().replace("(helpers)", "(folder)")
    )
    result = cove("deploy", str(folder), "--server", server.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert call(server, "dir") == "HELLO, DIR! (folder)"


def test_client_deploy_ships_the_folder(server: ServerProcess, folder: Path) -> None:
    (folder / "greeting.txt").write_text("howdy\n")
    with Client(server.url) as client:
        deployed = client.deploy(folder / "app.py")
    assert [a["name"] for a in deployed["applications"]] == ["multimod"]
    assert call(server, "sdk") == "HOWDY, SDK! (helpers)"


def test_the_client_refuses_an_oversize_folder_before_uploading(folder: Path) -> None:
    (folder / "weights.bin").write_bytes(b"\x00" * 5000)
    # nothing listens there: the refusal comes before any upload is tried
    with (
        Client(f"http://127.0.0.1:{free_port()}") as client,
        pytest.raises(PayloadTooLargeError) as caught,
    ):
        client.deploy(folder / "app.py", max_bytes=4096)
    assert "over the limit of 4.0 KiB (4096 bytes)" in str(caught.value)
    assert "largest entries: weights.bin 4.9 KiB" in str(caught.value)


def test_the_cli_reports_an_oversize_folder(server: ServerProcess, folder: Path) -> None:
    (folder / "weights.bin").write_bytes(b"\x00" * (10 * 1024 * 1024 + 1))
    result = cove("deploy", str(folder / "app.py"), "--server", server.url)
    assert result.returncode != 0
    out = " ".join((result.stdout + result.stderr).split())
    assert "over the limit of 10.0 MiB (10485760 bytes)" in out, out
    assert "weights.bin 10.0 MiB" in out, out
