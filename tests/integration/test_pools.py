"""Pool scaling: warm containers refilled, max never exceeded, min kept, scale to zero,
max_concurrency honoured, queueing without loss, one temporary folder per container."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import deployed_client, wait_until


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Any]]:
    data = tmp_path_factory.mktemp("data")
    with deployed_client(data, "scaling.py", container_idle_timeout=1.0) as client:
        yield client, client.app.state.engine  # type: ignore[attr-defined]


def functions(client: TestClient, app: str) -> dict[str, dict[str, Any]]:
    rows = client.get(f"/applications/{app}/functions").json()["functions"]
    return {row["function"]: row for row in rows if not row["retired"]}


def states(row: dict[str, Any]) -> list[str]:
    return sorted(c["state"] for c in row["containers"])


def run(client: TestClient, app: str, value: Any) -> Any:
    r = client.post(f"/applications/{app}", params={"wait": 120}, json=value)
    assert r.status_code == 200, r.text
    return r.json()


def test_warm_containers_are_ready_before_requests_and_refilled(
    server: tuple[TestClient, Any],
) -> None:
    client, _ = server
    wait_until(lambda: states(functions(client, "use_warm")["warm"]) == ["idle", "idle"])
    assert functions(client, "use_warm")["warm"]["cold_starts"] == 2
    rid = client.post("/applications/use_warm", json=1.5).json()["request_id"]
    # One warm container is taken: a replacement starts so two stay idle and ready.
    wait_until(lambda: states(functions(client, "use_warm")["warm"]) == ["busy", "idle", "idle"])
    client.get(f"/applications/use_warm/requests/{rid}/output", params={"wait": 60})
    assert functions(client, "use_warm")["warm"]["cold_starts"] == 3


def test_never_more_than_max_containers_and_queueing_loses_nothing(
    server: tuple[TestClient, Any],
) -> None:
    client, engine = server
    pids = run(client, "use_capped", 12)
    assert len(pids) == 12 and len(set(pids)) <= 2
    pool = next(p for k, p in engine.pools.items() if k[2] == "capped")
    assert pool.cold_starts <= 2


def test_min_containers_stay_while_others_scale_to_zero(server: tuple[TestClient, Any]) -> None:
    client, _ = server
    assert run(client, "use_kept", 4) == 8
    wait_until(lambda: functions(client, "use_kept")["on_demand"]["containers"] == [], 30)
    assert states(functions(client, "use_kept")["kept"]) == ["idle"]


def test_max_concurrency_calls_share_a_container(server: tuple[TestClient, Any]) -> None:
    client, _ = server
    spans = run(client, "use_shared", 6)
    assert len({pid for pid, _, _ in spans}) == 1  # max_containers=1
    peak = max(sum(1 for _, s, e in spans if s <= t < e) for _, t, _ in spans)
    assert peak == 3  # three at once, never more


# The local runtime's folders (on Ray they live on the node, swept when the next actor starts).
@pytest.mark.local_runtime_only
def test_each_container_has_its_own_temporary_folder(server: tuple[TestClient, Any]) -> None:
    client, engine = server
    folders = run(client, "use_scratch", ["a", "b", "c", "d"])
    for folder in set(folders):
        assert Path(folder).is_relative_to(Path(engine.settings.data_dir) / "tmp")
    assert len(set(folders)) >= 2  # a map over several containers: several folders
    # Idle containers stop after the idle timeout, and their folders go with them.
    wait_until(lambda: not any(Path(f).exists() for f in folders), 30, "folders to go")


def test_filling_the_temporary_folder_past_ephemeral_disk_fails_the_call(
    server: tuple[TestClient, Any],
) -> None:
    client, _ = server
    r = client.post("/applications/use_fills_disk", params={"wait": 60}, json=3)
    assert r.status_code == 500
    rid = r.headers["x-cove-request-id"]
    status = client.get(f"/applications/use_fills_disk/requests/{rid}").json()
    assert "ephemeral_disk of 2 GB" in status["error"]["message"]


def test_functions_endpoint_shows_bounds_and_cold_starts(server: tuple[TestClient, Any]) -> None:
    client, _ = server
    run(client, "use_capped", 2)
    row = functions(client, "use_capped")["capped"]
    assert row["max_containers"] == 2 and row["max_concurrency"] == 1
    assert row["cold_starts"] >= 1 and row["cold_start_seconds"]["p50"] > 0
    assert {"in_flight", "queued", "warm_containers", "min_containers"} <= set(row)
    assert client.get("/applications/nope/functions").status_code == 404


@pytest.mark.local_runtime_only  # CPU affinity of local processes; Ray does not pin actors
def test_containers_are_confined_to_their_cpus(server: tuple[TestClient, Any]) -> None:
    import os

    client, _ = server
    machine = len(os.sched_getaffinity(0))
    assert run(client, "use_cpus", None) == [1, min(2, machine)]


def test_async_calls_of_a_container_share_one_event_loop(server: tuple[TestClient, Any]) -> None:
    client, _ = server
    spans = run(client, "use_nap", 8)
    assert len({(s["loop"], s["thread"]) for s in spans}) == 1  # one loop, one thread
    peak = max(sum(1 for s in spans if s["start"] <= t["start"] < s["end"]) for t in spans)
    assert peak == 4  # max_concurrency=4: four at once on that loop, never more


def test_async_recursion_in_one_container_does_not_deadlock(
    server: tuple[TestClient, Any],
) -> None:
    client, _ = server
    # max_containers=1: each child runs in its parent's container, whether the parent
    # awaits it (beside it on the loop) or blocks the loop on it (in a thread).
    assert run(client, "use_count_down", 5) == [5, 5]
