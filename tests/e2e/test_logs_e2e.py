"""End to end: logs survive the server, and the CLI shows progress and logs."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import APPS, ServerProcess, wait_until

pytestmark = pytest.mark.slow


def cove(*args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cove.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def journaled_lines(data: Path, request_id: str) -> int:
    with sqlite3.connect(data / "cove.db") as db:
        query = "SELECT count(*) FROM call_logs WHERE request_id = ?"
        return int(db.execute(query, (request_id,)).fetchone()[0])


def test_logs_survive_a_server_crash_and_restart(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    data = tmp_path / "data"
    server = server_factory(data).start()
    server.deploy(APPS / "watched.py")
    with server.client() as c:
        r = c.post("/applications/fan", params={"wait": 60}, json=3)
        assert r.json() == 5
        rid = r.headers["x-cove-request-id"]
        before = c.get(f"/applications/fan/requests/{rid}/logs").json()["logs"]
    assert len(before) == 10  # 3 lines of each of 3 squares, one of fan
    # Lazy writes: the lines are committed within a moment; then the server dies hard.
    wait_until(lambda: journaled_lines(data, rid) == len(before), 30, "the lines to commit")
    server.kill()
    server = server_factory(data, port=server.port).start()
    with server.client() as c:
        after = c.get(f"/applications/fan/requests/{rid}/logs").json()["logs"]
        assert after == before
        events = c.get(
            f"/applications/fan/requests/{rid}/progress", params={"format": "json"}
        ).json()
        assert events["events"][-1]["type"] == "request_finished"
    result = cove("logs", "fan", rid, "--server", server.url, "--function", "square")
    assert result.returncode == 0, result.stderr
    printed = result.stdout.splitlines()
    assert len(printed) == 9
    assert any("square[0.0.1 #1] stdout: squaring 1" in line for line in printed)
    assert any("INFO: watched: logged 2" in line for line in printed)


def test_cli_invoke_shows_progress_then_the_output_and_follows_logs(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    server = server_factory(tmp_path / "data").start()
    server.deploy(APPS / "watched.py")
    result = cove("invoke", "fan", "--json", "4", "--wait", "--server", server.url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == 0 + 1 + 4 + 9
    # The bar, fed by the request's events, ends complete with the last progress message.
    assert "summed 4" in result.stderr and "4/4" in result.stderr and "100%" in result.stderr
    assert "calls 5/5" in result.stderr
    listing = cove("requests", "fan", "--server", server.url)
    assert listing.returncode == 0 and "succeeded" in listing.stdout
    (rid,) = [
        r["id"] for r in httpx.get(f"{server.url}/applications/fan/requests").json()["requests"]
    ]
    assert rid[:12] in listing.stdout  # the table shows it (folded when the terminal is narrow)
    followed = cove("logs", "fan", rid, "-f", "--server", server.url)
    assert followed.returncode == 0, followed.stderr
    assert "fan[0 #1] stdout: fan starts" in followed.stdout
    assert followed.stdout.count("squaring") == 4
