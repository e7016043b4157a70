"""A SIGKILLed server's containers leave what they started running, in their process
groups or not (setsid): the next server on the same data folder stops it all."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import APPS, ServerProcess, wait_until
from tests.integration.test_descendants import kill_all, running

pytestmark = [pytest.mark.slow, pytest.mark.local_runtime_only]


def test_a_restart_stops_what_a_killed_servers_containers_started(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    data = tmp_path / "data"
    server = server_factory(data).start()
    server.deploy(APPS / "spawner.py")
    pids: dict[str, int] = {}
    try:
        with server.client() as c:
            r = c.post("/applications/leave_processes", params={"wait": 60}, json=1)
            assert r.status_code == 200, r.text
            pids = r.json()
        server.kill()
        # The container ends when its server is gone; what it started goes on.
        wait_until(lambda: not running(pids["container"]), 30, "the container to end")
        started = {name: pid for name, pid in pids.items() if name != "container"}
        assert all(running(pid) for pid in started.values()), started

        server_factory(data, port=server.port).start()
        left = lambda: [name for name, pid in started.items() if running(pid)]  # noqa: E731
        wait_until(lambda: not left(), 10, "the dead server's processes to stop")
    finally:
        kill_all(list(pids.values()))
