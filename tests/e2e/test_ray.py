"""The Ray runtime on a real two-node Ray cluster, inside a network namespace of its own.

The test creates a network namespace with only a loopback interface, starts a Ray head
node (resource ``region:us-east-1``) and a second node (``region:eu-west-1``) in it, each
in a PID namespace of its own (so SIGKILL of one process ends the whole node), and a
``cove server --runtime ray`` in it too. It talks to the server through a Unix socket that
a small forwarder inside the namespace relays to the server's 127.0.0.1 port (Unix
sockets are not confined to a network namespace). Nothing leaves the machine.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.raycluster import Cluster, skip_reason

pytestmark = pytest.mark.slow
APPS = Path(__file__).resolve().parents[1] / "apps" / "ray_apps.py"
GCS_PORT = 6391
SERVER_PORT = 8907


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with Cluster.create("cove-ray") as c:
        system = {"health_check_period_ms": 500, "health_check_failure_threshold": 3}
        c.start_head(GCS_PORT, {"region:us-east-1": 1}, system, {"COVE_TEST_NODE": "head"})
        c.start_node(
            "region",
            ["--address", f"127.0.0.1:{GCS_PORT}",
             "--resources", '{"region:eu-west-1": 1}'],
            {"COVE_TEST_NODE": "region"},
        )  # fmt: skip
        client = c.start_server(
            "server",
            SERVER_PORT,
            ["--runtime", "ray", "--ray-address", f"127.0.0.1:{GCS_PORT}"],
            {"COVE_CONTAINER_IDLE_TIMEOUT": "600"},
        )
        response = client.put("/secrets/RAY_TEST_SECRET", json={"value": "s3cret"})
        assert response.status_code in (200, 201, 204), response.text
        code = {"code": ("ray_apps.py", APPS.read_bytes(), "text/x-python")}
        response = client.post("/applications", files=code)
        assert response.status_code == 201, response.text
        yield c


def test_a_region_pinned_function_runs_only_on_that_regions_node(cluster: Cluster) -> None:
    started = time.monotonic()
    results = cluster.invoke("pinned", 6)
    assert len(results) == 6
    assert {r["node"] for r in results} == {"region"}, results
    assert len({r["node_id"] for r in results}) == 1
    assert all(r["secret"] == "s3cret" for r in results)  # the secret it lists, as env
    assert time.monotonic() - started < 120


def test_a_map_spreads_over_both_nodes_with_state_and_progress(cluster: Cluster) -> None:
    out = cluster.invoke("spread", 8)
    items = out["items"]
    assert [int(r["i"]) for r in items] == list(range(8))  # order kept
    assert {r["node"] for r in items} == {"head", "region"}, items
    assert len({r["node_id"] for r in items}) == 2
    assert out["extra"]["i"] == "100"  # a future run and collected in the container
    assert out["asked"] == 8  # request state written and read back over the channel
    assert all(r["secret"] == "" for r in items)  # secrets only where a function lists them


def test_memory_is_enforced_by_coves_monitor_and_timeouts_replace_the_actor(
    cluster: Cluster,
) -> None:
    started = time.monotonic()
    response = cluster.client.post("/applications/greedy", params={"wait": 120}, json=1300)
    assert response.status_code == 500, response.text
    assert response.json()["error"]["reason"] == "out_of_memory"
    assert time.monotonic() - started < 45  # stopped long before its 60 s sleep ends

    response = cluster.client.post("/applications/nap", params={"wait": 120}, json=30)
    assert response.status_code == 500, response.text
    assert response.json()["error"]["reason"] == "function_timeout"
    after = cluster.invoke("nap", 0)  # a fresh actor serves the next call
    assert after["node"] in ("head", "region")


def test_a_node_killed_mid_request_has_its_calls_rerun_on_the_other(cluster: Cluster) -> None:
    marks = cluster.root / "marks"
    marks.mkdir()
    response = cluster.client.post("/applications/survive", json={"folder": str(marks), "n": 6})
    assert response.status_code == 200, response.text
    request_id = response.json()["request_id"]

    def on_both() -> bool:
        nodes = {p.name.split("-")[1] for p in marks.iterdir()}
        return nodes == {"head", "region"}

    wait_until(on_both, 120, "items running on both nodes")
    on_region = {p.name.split("-")[0] for p in marks.iterdir() if "-region-" in p.name}
    cluster.kill("region")  # SIGKILL: raylet, workers and all, mid-request
    response = cluster.client.get(
        f"/applications/survive/requests/{request_id}/output", params={"wait": 150}
    )
    assert response.status_code == 200, response.text
    results = response.json()
    assert [int(r["i"]) for r in results] == list(range(6))
    assert {r["node"] for r in results} == {"head"}, results
    # The items that had begun on the killed node ran again, on the head node.
    rerun = {p.name.split("-")[0] for p in marks.iterdir() if "-head-" in p.name}
    assert on_region and on_region <= rerun
