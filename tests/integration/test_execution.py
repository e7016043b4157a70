"""Execution: user code runs in container processes, containers are reused, maps run in
parallel, and recursion deeper than a one-container pool does not deadlock."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cove.engine.settings import Settings
from cove.server import create_app
from tests.conftest import APPS


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Any]]:
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("data")))
    with TestClient(app) as client:
        for name in ("execution.py", "recursion.py"):
            path = APPS / name
            r = client.post("/applications", files={"code": (name, path.read_bytes())})
            assert r.status_code == 201, r.text
        yield client, app.state.engine


def run(client: TestClient, app: str, value: Any) -> Any:
    r = client.post(f"/applications/{app}", params={"wait": 120}, json=value)
    assert r.status_code == 200, r.text
    return r.json()


def test_user_code_never_runs_in_the_server_process(server: tuple[TestClient, Any]) -> None:
    client, _ = server
    out = run(client, "pids", 2)
    assert os.getpid() not in out["app"] + out["children"]
    assert out["app"][0] not in out["children"]  # each function has containers of its own


def test_map_runs_on_several_containers_at_once(server: tuple[TestClient, Any]) -> None:
    client, engine = server
    out = run(client, "pids", 6)
    assert len(set(out["children"])) >= 2
    pool = engine.pools[("pids", 1, "whereami")]
    assert pool.cold_starts <= pool.max_containers


def test_containers_serve_many_calls(server: tuple[TestClient, Any]) -> None:
    client, engine = server
    assert run(client, "many_sequential", 50)[1:] == list(range(1, 51))
    run(client, "many_sequential", 50)
    pool = engine.pools[("many_sequential", 1, "trivial")]
    assert pool.cold_starts == 1  # sequential calls reuse the one warm container


def test_recursion_with_one_container_does_not_deadlock(server: tuple[TestClient, Any]) -> None:
    client, engine = server
    assert run(client, "fibonacci", 10) == 55
    assert engine.pools[("fibonacci", 1, "fib")].cold_starts == 1


def test_fanout_deeper_than_the_pool_completes(server: tuple[TestClient, Any]) -> None:
    client, _ = server
    assert run(client, "nested_fanout", 5) == [sum(i * i for i in range(x)) for x in range(5)]
