"""The design hazards: every failure path ends, payloads leave rows, process groups die."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cove.store.schema import function_calls
from tests.conftest import deployed_client, wait_until


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Any]]:
    data = tmp_path_factory.mktemp("data")
    with deployed_client(data, "hazards.py", inline_payload_limit=1024) as client:
        yield client, client.app.state.engine  # type: ignore[attr-defined]


def test_large_outputs_go_to_the_blob_store(server: tuple[TestClient, Any]) -> None:
    client, engine = server
    r = client.post("/applications/big_output", params={"wait": 60}, json=200_000)
    assert r.status_code == 200 and r.json() == "x" * 200_000
    rid = r.headers["x-cove-request-id"]
    row = engine.store.read_sync(
        lambda c: (
            c.execute(select(function_calls).where(function_calls.c.request_id == rid))
            .mappings()
            .one()
        )
    )
    assert row["output_inline"] is None and row["output_blob"]
    assert engine.blobs.get(row["output_blob"]) == r.content
    small = client.post("/applications/big_output", params={"wait": 60}, json=10)
    rid = small.headers["x-cove-request-id"]
    row = engine.store.read_sync(
        lambda c: (
            c.execute(select(function_calls).where(function_calls.c.request_id == rid))
            .mappings()
            .one()
        )
    )
    assert row["output_inline"] == b'"xxxxxxxxxx"' and row["output_blob"] is None


def test_failing_container_init_ends_the_request(server: tuple[TestClient, Any]) -> None:
    client, _ = server
    r = client.post("/applications/uses_broken", params={"wait": 60}, json=1)
    assert r.status_code == 500
    err = r.json()["error"]
    assert err["function_name"] == "Broken.predict"
    assert "model weights missing" in err["message"]


# The exit code of a local process; a Ray actor that ends is lost to the server (docs/ray.md).
@pytest.mark.local_runtime_only
def test_a_container_that_exits_fails_the_call_with_a_reason(
    server: tuple[TestClient, Any],
) -> None:
    client, engine = server
    r = client.post("/applications/crashes", params={"wait": 60}, json=1)
    assert r.status_code == 500
    rid = r.json()["error"]["request_id"]
    status = client.get(f"/applications/crashes/requests/{rid}").json()
    assert status["status"] == "failed"
    assert status["error"]["function_name"] == "crasher"
    assert status["error"]["reason"] == "function_error"
    assert "exit code 3" in status["error"]["message"]
    pool = engine.pools[("crashes", 1, "crasher")]
    assert pool.cold_starts == 1  # the code's own exit uses its retries (none here)


def test_stopping_a_container_stops_what_its_code_spawned(
    server: tuple[TestClient, Any], tmp_path: Path
) -> None:
    client, _ = server
    pid_file = tmp_path / "child.pid"
    client.post("/applications/spawner", json=str(pid_file))
    wait_until(lambda: pid_file.exists() and bool(pid_file.read_text()), what="the start")
    pid = int(pid_file.read_text())
    assert _alive(pid)
    assert client.delete("/applications/spawner").status_code == 204
    wait_until(lambda: not _alive(pid), 30, "the spawned process to stop with its container")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_a_call_past_its_timeout_is_stopped_and_fails_with_the_reason(
    server: tuple[TestClient, Any],
) -> None:
    client, _ = server
    started = time.monotonic()
    r = client.post("/applications/times_out", params={"wait": 60}, json=30)
    assert r.status_code == 500
    assert time.monotonic() - started < 20  # stopped near its 1 s timeout, not after 30 s
    err = r.json()["error"]
    assert err["function_name"] == "sleepy" and err["reason"] == "function_timeout"


def test_waiting_on_children_does_not_count_against_the_timeout(
    server: tuple[TestClient, Any],
) -> None:
    client, _ = server
    r = client.post("/applications/waits_on_slow_child", params={"wait": 60}, json=0.1)
    assert r.status_code == 200, r.text
    assert r.json() == 3.1


def test_progress_updates_reset_the_timeout(server: tuple[TestClient, Any]) -> None:
    client, _ = server
    r = client.post("/applications/long_with_progress", params={"wait": 60}, json=3.0)
    assert r.status_code == 200, r.text
    assert r.json() == "finished"
    status = client.get(
        f"/applications/long_with_progress/requests/{r.headers['x-cove-request-id']}"
    )
    progress = status.json()["progress"]
    assert any(p["current"] == p["total"] == 12 for p in progress)
