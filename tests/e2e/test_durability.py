"""The server is SIGKILLed mid-request and restarted: the request finishes with the right
output and no call whose output was recorded runs its body again."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest

from tests.conftest import APPS, ServerProcess, wait_until

pytestmark = pytest.mark.slow


def _lines(log: Path) -> list[tuple[str, str, str]]:
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        rid, call_id, tag = line.split(" ", 2)
        out.append((rid, call_id, tag))
    return out


def _setup(tmp_path: Path, factory: type[ServerProcess]) -> tuple[Path, Path, ServerProcess]:
    """A server with the durable workload deployed; returns (data, side-effect log, server)."""
    work = tmp_path / "work"
    work.mkdir()
    server = factory(tmp_path / "data").start()
    server.deploy(APPS / "durable.py")
    return tmp_path / "data", work / "effects.log", server


def _job(log: Path, steps: int, block_at: int) -> dict[str, tuple[None, str]]:
    return {
        "log": (None, f'"{log}"'),
        "steps": (None, str(steps)),
        "block_at": (None, str(block_at)),
    }


def test_sigkill_mid_request_resumes_without_repeating_finished_calls(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    data, log, server = _setup(tmp_path, server_factory)
    work = log.parent
    with server.client() as c:
        rid = c.post("/applications/durable_job", files=_job(log, 6, 3)).json()["request_id"]
    wait_until(lambda: "start step3" in [t for _, _, t in _lines(log)])
    pids = [int(p.name) for p in (data / "containers").iterdir()]
    server.kill()

    restarted = server_factory(data, port=server.port).start()
    # The previous server's containers are gone before anything resumes.
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)
    (work / "go").write_text("go")
    with restarted.client() as c:
        r = c.get(f"/applications/durable_job/requests/{rid}/output", params={"wait": 60})
        assert r.status_code == 200, r.text
        assert r.json() == {"total": 150, "squares": [0, 1, 4, 9, 16, 25], "stamp": "kept"}
        status = c.get(f"/applications/durable_job/requests/{rid}").json()
        assert status["status"] == "succeeded"

    done = collections.Counter(call for r, call, tag in _lines(log) if tag.startswith("done"))
    assert all(n == 1 for n in done.values()), done
    assert len(done) == 6 + 6 + 1
    starts = collections.Counter(t for _, _, t in _lines(log) if t.startswith("start"))
    # Steps 0-2 had finished before the crash: they never ran again. Step 3 was running.
    assert [starts[f"start step{i}"] for i in range(6)] == [1, 1, 1, 2, 1, 1]


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_request_accepted_before_crash_is_not_lost(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    data, log, server = _setup(tmp_path, server_factory)
    work = log.parent
    with server.client() as c:
        ids = [
            c.post("/applications/durable_job", files=_job(log, 2, 0)).json()["request_id"]
            for _ in range(3)
        ]
    server.kill()
    (work / "go").write_text("go")
    restarted = server_factory(data, port=server.port).start()
    with restarted.client() as c:
        for rid in ids:
            r = c.get(f"/applications/durable_job/requests/{rid}/output", params={"wait": 60})
            assert r.status_code == 200, r.text
            assert r.json()["total"] == 10
    assert os.path.exists(log)
