"""Graceful shutdown of a real server, and cancel/replay through the CLI."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import APPS, ServerProcess, wait_for_file

pytestmark = pytest.mark.slow


def _effects(work: Path) -> list[str]:
    log = work / "effects.log"
    return log.read_text().split() if log.exists() else []


def test_sigterm_refuses_new_requests_and_lets_running_ones_finish(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    server = server_factory(tmp_path / "data", env={"COVE_SHUTDOWN_GRACE": "30"}).start()
    server.deploy(APPS / "faults.py")
    with server.client() as c:
        body = {"work": str(work), "seconds": 2}
        rid = c.post("/applications/slow", json=body).json()["request_id"]
        wait_for_file(work / "started")
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while True:  # the signal is handled asynchronously
            refused = c.post("/applications/slow", json=body)
            if refused.status_code == 503 or time.monotonic() > deadline:
                break
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "unavailable"
        assert c.get(f"/applications/slow/requests/{rid}").status_code == 200
    server.process.wait(timeout=30)  # exits on its own once the running request finished
    restarted = server_factory(tmp_path / "data", port=server.port).start()
    with restarted.client() as c:
        status = c.get(f"/applications/slow/requests/{rid}").json()
        assert status["status"] == "succeeded"
    assert _effects(work).count("slow_step") == 1


def test_what_the_grace_period_cuts_short_resumes_on_restart(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    server = server_factory(tmp_path / "data", env={"COVE_SHUTDOWN_GRACE": "0.5"}).start()
    server.deploy(APPS / "faults.py")
    with server.client() as c:
        body = {"work": str(work), "seconds": 3}
        rid = c.post("/applications/slow", json=body).json()["request_id"]
    wait_for_file(work / "started")
    assert server.process is not None
    stopped_at = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=20)
    assert time.monotonic() - stopped_at < 3  # it did not wait for the 3 s call
    restarted = server_factory(tmp_path / "data", port=server.port).start()
    with restarted.client() as c:
        r = c.get(f"/applications/slow/requests/{rid}/output", params={"wait": 60})
        assert r.status_code == 200 and r.json() == "slept"


def test_cancel_and_replay_from_the_cli(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    server = server_factory(tmp_path / "data").start()
    server.deploy(APPS / "faults.py")

    def cove(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cove.cli.main", *args, "--server", server.url],
            capture_output=True,
            text=True,
            timeout=120,
        )

    with httpx.Client(base_url=server.url, timeout=60) as c:
        rid = c.post("/applications/slow", json={"work": str(work), "seconds": 30}).json()[
            "request_id"
        ]
        wait_for_file(work / "started")
        done = cove("cancel", "slow", rid)
        assert done.returncode == 0, done.stderr
        assert c.get(f"/applications/slow/requests/{rid}").json()["status"] == "cancelled"
        again = cove("cancel", "slow", rid)
        assert again.returncode == 1 and "already cancelled" in again.stderr + again.stdout

        failed = c.post("/applications/repairable", params={"wait": 60}, json=str(work))
        rid = failed.headers["x-cove-request-id"]
        (work / "fixed").write_text("yes")
        replayed = cove("replay", "repairable", rid)
        assert replayed.returncode == 0, replayed.stderr
        out = c.get(f"/applications/repairable/requests/{rid}/output", params={"wait": 60})
        assert out.json() == 42
