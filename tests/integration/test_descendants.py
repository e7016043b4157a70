"""What a container's code starts ends with the container, whether it stayed in the
container's process group or left it (``setsid``); a starting server stops only what
servers on its own data folder left."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

from cove.runtime import descendants
from cove.runtime.local import LocalProcessRuntime
from tests.conftest import deployed_client, wait_until

pytestmark = pytest.mark.local_runtime_only


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed but not yet reaped by its parent, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def kill_all(pids: list[int]) -> None:
    """Clean up after a failed test: what it left must not outlive it."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("use_templates", [True, False], ids=["forked", "spawned"])
def test_stopping_a_container_stops_everything_it_started(
    tmp_path: Path, use_templates: bool
) -> None:
    pids: dict[str, int] = {}
    try:
        with deployed_client(tmp_path, "spawner.py", use_templates=use_templates) as client:
            r = client.post("/applications/leave_processes", params={"wait": 60}, json=1)
            assert r.status_code == 200, r.text
            pids = r.json()
            assert all(running(pid) for pid in pids.values()), pids
            container = os.getsid(pids["container"])
            # Two of them left the container's session: its process group misses them.
            assert os.getsid(pids["process"]) == container
            assert os.getsid(pids["session"]) != container
            assert os.getsid(pids["daemon"]) != container
        # The server stopped, and its containers with it.
        left = lambda: [name for name, pid in pids.items() if running(pid)]  # noqa: E731
        wait_until(lambda: not left(), 30, "the container's processes to stop")
    finally:
        kill_all(list(pids.values()))


def test_a_starting_server_stops_only_what_its_folders_servers_left(tmp_path: Path) -> None:
    data = tmp_path / "data"
    runtime = LocalProcessRuntime(data)
    folder = descendants.folder_key(data)

    def carrying(token: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, descendants.TOKEN: token}
        return subprocess.Popen(["sleep", "600"], env=env, start_new_session=True)

    left = carrying(f"{folder}:0badc0de:app-v1-f-1")  # a container's, of a server now dead
    own = carrying(descendants.container_token(runtime.run, "app-v1-f-2"))  # this server's
    other = carrying(f"{descendants.folder_key(tmp_path / 'elsewhere')}:0badc0de:app-v1-f-1")
    try:
        assert runtime.reap_orphans() == 1
        assert left.wait(timeout=30) == -signal.SIGKILL
        assert own.poll() is None and other.poll() is None
    finally:
        kill_all([left.pid, own.pid, other.pid])
        for process in (left, own, other):
            process.wait(timeout=30)
