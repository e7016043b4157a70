"""Once requests stop, the server gives the memory they made it grow to back to the system
(Engine._release_memory_when_idle): after each spell of requests, with none running."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.engine import engine as engine_module
from tests.conftest import deployed_client, wait_until


def test_the_server_releases_memory_once_requests_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    with deployed_client(tmp_path, "core.py") as client:
        engine = client.app.state.engine  # type: ignore[attr-defined]

        def release() -> bool:
            calls.append(len(engine.live))
            return True

        monkeypatch.setattr(engine_module, "release_free_memory", release)
        for _ in range(3):
            assert client.post("/applications/shout?wait=30", json="a").json() == "A"
        wait_until(lambda: len(calls) == 1, 30, "memory released after the requests")
        assert calls == [0]  # with no request running
        assert client.post("/applications/shout?wait=30", json="b").json() == "B"
        wait_until(lambda: len(calls) == 2, 30, "released again after the next idle spell")
        assert calls == [0, 0]
