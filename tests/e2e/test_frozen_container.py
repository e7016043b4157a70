"""A container frozen (SIGSTOP) in the middle of a call: the call's timeout fires, the
frozen process is killed with SIGKILL (a stopped process ignores SIGTERM until it is
continued) and reaped, and the call is retried in a new container per its policy."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.conftest import APPS, ServerProcess, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.local_runtime_only]


def _state(pid: int) -> str | None:
    """The process's state letter (T: stopped, Z: a zombie), None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def test_a_frozen_container_is_killed_and_its_call_retried_in_a_new_one(
    tmp_path: Path, server_factory: type[ServerProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    server = server_factory(tmp_path / "data").start()
    server.deploy(APPS / "frozen.py")
    marker = tmp_path / "pids"
    with server.client() as c:
        r = c.post("/applications/stalling", json=str(marker))
        assert r.status_code == 200, r.text
        rid = r.json()["request_id"]
        wait_until(lambda: marker.exists() and marker.read_text().endswith("\n"), 60)
        frozen = int(marker.read_text().split()[0])
        os.kill(frozen, signal.SIGSTOP)  # the first attempt's container freezes mid-call
        wait_until(lambda: _state(frozen) == "T", 10, "the container to stop")

        answer = c.get(f"/applications/stalling/requests/{rid}/output", params={"wait": 60})
        assert answer.status_code == 200, answer.text
        pids = [int(p) for p in marker.read_text().split()]
        assert len(pids) == 2 and answer.json() == {"pid": pids[1]} and pids[1] != frozen
        attempts = c.get(f"/applications/stalling/requests/{rid}/timeline")
        # The frozen process is gone: killed and reaped, not left stopped or a zombie.
        wait_until(lambda: _state(frozen) is None, 30, "the frozen container to be reaped")
        containers = c.get("/applications/stalling/functions").json()
    listed = {
        container.get("pid")
        for function in containers.get("functions", [])
        for container in function.get("containers", [])
    }
    assert frozen not in listed
    assert attempts.status_code == 200, attempts.text
    (call,) = attempts.json()["calls"]
    history = call["attempt_history"]
    assert [(h["status"], (h["error"] or {}).get("reason")) for h in history] == [
        ("failed", "function_timeout"),
        ("succeeded", None),
    ]
    assert history[0]["container"] != history[1]["container"]
    with capsys.disabled():
        print(
            f"\nfrozen container: 1 request, {len(history)} attempts (the first frozen in pid "
            f"{frozen}: function_timeout after 2 s, killed and reaped; the retry in pid "
            f"{pids[1]}, container {history[1]['container']}: succeeded), errors by code: "
            "function_timeout 1"
        )
