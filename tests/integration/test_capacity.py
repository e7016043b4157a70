"""Machine capacity across pools: calls queue rather than overcommit the CPUs or memory the
server is configured with; blocked parents lend their share to their children (no nested
deadlock); idle containers of other functions make room."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import APPS, deployed_client, wait_until


def _server(tmp_path: Path, **settings: Any) -> Iterator[tuple[TestClient, Any]]:
    with deployed_client(tmp_path / "data", "capacity.py", **settings) as client:
        yield client, client.app.state.engine  # type: ignore[attr-defined]


@pytest.fixture
def two_cpus(tmp_path: Path) -> Iterator[tuple[TestClient, Any]]:
    yield from _server(tmp_path, cpus=2.0)


@pytest.fixture
def three_gb(tmp_path: Path) -> Iterator[tuple[TestClient, Any]]:
    yield from _server(tmp_path, memory_gb=3.0)


def run(client: TestClient, app: str, value: Any) -> Any:
    r = client.post(f"/applications/{app}", params={"wait": 120}, json=value)
    assert r.status_code == 200, r.text
    return r.json()


def most_at_once(spans: list[dict[str, float]]) -> int:
    edges = sorted([(s["start"], 1) for s in spans] + [(s["end"], -1) for s in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


# Local processes hold a CPU only while busy; Ray's actors: the tests at the end of the file.
@pytest.mark.local_runtime_only
def test_calls_queue_for_cpus_and_the_blocked_parent_lends_its_own(
    two_cpus: tuple[TestClient, Any],
) -> None:
    client, engine = two_cpus
    spans = run(client, "fan_out", 6)
    assert len(spans) == 6  # every queued call ran: nothing lost
    # crunch allows 6 containers, but 2 CPUs hold two cpu=1 calls at once. The parent
    # (cpu=1 too) waits on its children meanwhile: were it counted, only one would run.
    assert most_at_once(spans) == 2
    assert engine.capacity.cpu_in_use() == 0.0  # nothing busy once the request is done


@pytest.mark.parametrize("reserved_for_life", [False, True])
def test_a_chain_deeper_than_the_machine_does_not_deadlock(
    tmp_path: Path, reserved_for_life: bool
) -> None:
    # One CPU, three cpu=1 functions each waiting on the next. Reserved for life (Ray),
    # nothing idle can make room, so the children use what their blocked parents lend.
    for client, engine in _server(tmp_path, cpus=1.0):
        engine.capacity.reserved_for_life = reserved_for_life
        assert run(client, "nested", 3) == (3 + 1) * 2 + 1


def test_idle_containers_of_another_function_make_room_in_memory(
    three_gb: tuple[TestClient, Any],
) -> None:
    client, engine = three_gb
    # big_a and big_b need 2 GB each and the machine has 3: each call of the one stops
    # the idle container of the other. The parent (1 GB) waits on them and is not counted.
    first_a, b, second_a = run(client, "big_pair", 1)
    assert len({first_a, b, second_a}) == 3  # big_a's first container was stopped for big_b
    assert engine.capacity.evictions >= 2
    assert engine.capacity.memory_in_use() <= 3.0
    rows = client.get("/applications/big_pair/functions").json()["functions"]
    alive = {row["function"]: [c["pid"] for c in row["containers"]] for row in rows}
    # Only big_a's second container is left; the API names its process.
    assert alive["big_a"] == [second_a] and alive["big_b"] == []


def test_the_machine_capacity_is_shown(two_cpus: tuple[TestClient, Any]) -> None:
    client, _ = two_cpus
    body = client.get("/status").json()
    assert body["capacity"]["cpus"] == 2.0
    assert body["capacity"]["cpus_in_use"] == 0.0


def test_a_warm_container_displaces_an_idle_one_waiting_to_scale_down(
    three_gb: tuple[TestClient, Any],
) -> None:
    client, engine = three_gb
    for name in ("capacity_lingering.py", "capacity_warm.py"):
        path = APPS / name
        if name == "capacity_warm.py":
            run(client, "lingering", None)  # its container now idles, holding 2 of 3 GB
        r = client.post("/applications", files={"code": (path.name, path.read_bytes())})
        assert r.status_code == 201, r.text

    def pools() -> dict[str, list[str]]:
        rows = []
        for app in ("lingering", "warm_big"):
            rows += client.get(f"/applications/{app}/functions").json()["functions"]
        return {row["function"]: [c["state"] for c in row["containers"]] for row in rows}

    wait_until(lambda: pools() == {"lingering": [], "warm_big": ["idle"]}, 30, "the swap")
    assert engine.capacity.evictions == 1


# -- a runtime whose containers hold CPUs and memory for life (Ray actors) ---------------------
@pytest.fixture
def two_cpus_for_life(tmp_path: Path) -> Iterator[tuple[TestClient, Any]]:
    for client, engine in _server(tmp_path, cpus=2.0):
        engine.capacity.reserved_for_life = True  # what RayRuntime makes it
        yield client, engine


def test_cpus_held_for_life_reuse_idle_containers_instead_of_starting_more(
    two_cpus_for_life: tuple[TestClient, Any],
) -> None:
    client, engine = two_cpus_for_life
    spans = run(client, "fan_out", 6)
    assert len(spans) == 6
    assert most_at_once(spans) == 2
    # The parent lends its CPU while it waits; two crunch containers hold the other two for
    # life, so crunch never has more than two, although it may have six.
    assert len({span["pid"] for span in spans}) == 2
    assert engine.capacity.cpu_in_use() == 3.0  # idle, they still hold them (as Ray does)


def test_cpus_held_for_life_are_freed_by_stopping_idle_containers_of_another_function(
    tmp_path: Path,
) -> None:
    for client, engine in _server(tmp_path, cpus=1.0):
        engine.capacity.reserved_for_life = True
        # One CPU: big_a's idle container holds it, so big_b's call stops it, and so on.
        first_a, b, second_a = run(client, "big_pair", 1)
        assert len({first_a, b, second_a}) == 3
        assert engine.capacity.evictions >= 2


def test_reserved_for_life_blocked_parents_count_when_idle_containers_can_make_room(
    tmp_path: Path,
) -> None:
    for client, engine in _server(tmp_path, cpus=3.0):
        engine.capacity.reserved_for_life = True
        run(client, "fan_out", 1)  # leaves fan_out's and crunch's containers idle: 2 CPUs
        assert engine.capacity.cpu_in_use() == 2.0
        # nested (1 CPU) fits beside them. Its child middle, and middle's child leaf, would
        # fit too if the blocked parents lent their CPUs; but a Ray actor that waits still
        # holds them, so each child's start stops one of the idle containers instead of
        # waiting in the cluster's queue behind them.
        assert run(client, "nested", 3) == (3 + 1) * 2 + 1
        assert engine.capacity.evictions == 2
        rows = client.get("/applications/fan_out/functions").json()["functions"]
        alive = {row["function"]: row["containers"] for row in rows}
        assert alive["fan_out"] == [] and alive["crunch"] == []
