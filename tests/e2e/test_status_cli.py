"""``cove status APP`` against a real server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import APPS, ServerProcess, wait_until

pytestmark = pytest.mark.slow


def test_status_shows_each_function_and_its_containers(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    server = server_factory(tmp_path / "data").start()
    server.deploy(APPS / "scaling.py")

    def idle_warm() -> bool:
        rows = httpx.get(f"{server.url}/applications/use_warm/functions").json()["functions"]
        warm = next(r for r in rows if r["function"] == "warm")
        return [c["state"] for c in warm["containers"]] == ["idle", "idle"]

    wait_until(idle_warm)
    result = subprocess.run(
        [sys.executable, "-m", "cove.cli.main", "status", "use_warm", "--server", server.url],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": ""},
    )
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if " warm " in f" {x} ")
    assert "2 idle" in line and "warm 2" in line
    assert "use_warm" in result.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "cove.cli.main", "status", "nope", "--server", server.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and "nope" in missing.stderr + missing.stdout
