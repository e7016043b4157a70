"""Fault tolerance in process: backoff, attempt records, container loss, cancellation,
replay (with upgrade and divergence), fail-fast constraints, constructor timeouts."""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cove.engine.settings import Settings
from cove.server import create_app
from tests.conftest import APPS, wait_for_file, wait_until


def deploy(client: TestClient, name: str) -> None:
    path = APPS / name
    r = client.post("/applications", files={"code": (path.name, path.read_bytes())})
    assert r.status_code == 201, r.text


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[tuple[TestClient, Any]]:
    # A 4-CPU machine (or cluster) in one region, whatever runs the tests: huge (cpu=8) and
    # in_europe can never run on it.
    app = create_app(Settings(data_dir=data_dir, cpus=4.0, regions=["us-east-1"]))
    with TestClient(app) as client:
        deploy(client, "faults.py")
        yield client, app.state.engine


@pytest.fixture
def work(tmp_path: Path) -> str:
    return str(tmp_path)


def status_of(client: TestClient, app: str, rid: str) -> dict[str, Any]:
    data: dict[str, Any] = client.get(f"/applications/{app}/requests/{rid}").json()
    return data


def effects(work: str) -> Counter[str]:
    log = Path(work, "effects.log")
    lines = log.read_text().splitlines() if log.exists() else []
    return Counter(line.split()[0] for line in lines)


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_retries_back_off_exponentially_up_to_max_delay(
    server: tuple[TestClient, Any], work: str
) -> None:
    client, _ = server
    r = client.post("/applications/backoff", params={"wait": 60}, json=work)
    assert r.status_code == 200 and r.json() == "ok"
    calls = status_of(client, "backoff", r.headers["x-cove-request-id"])["function_calls"]
    child = next(c for c in calls if c["function"] == "fails_three_times")
    history = child["attempt_history"]
    assert [a["status"] for a in history] == ["failed", "failed", "failed", "succeeded"]
    assert "planned failure 1" in history[0]["error"]["message"]
    assert all(a["container"] for a in history)
    gaps = [ts(b["started_at"]) - ts(a["finished_at"]) for a, b in itertools.pairwise(history)]
    for gap, expected in zip(gaps, [0.4, 0.8, 1.0], strict=True):  # 0.4 * 2**n, capped at 1
        assert expected * 0.8 <= gap <= expected * 1.2, (gaps, expected)


def test_a_container_killed_from_outside_is_retried_without_a_user_retry(
    server: tuple[TestClient, Any], work: str
) -> None:
    client, _ = server
    rid = client.post("/applications/slow", json={"work": work, "seconds": 1.5}).json()[
        "request_id"
    ]
    started = Path(work, "started")
    wait_for_file(started)
    pid = int(started.read_text())
    started.unlink()
    os.killpg(pid, signal.SIGKILL)  # the container is its own process group
    r = client.get(f"/applications/slow/requests/{rid}/output", params={"wait": 60})
    assert r.status_code == 200 and r.json() == "slept"
    child = next(
        c for c in status_of(client, "slow", rid)["function_calls"] if c["function"] == "slow_step"
    )
    assert [a["status"] for a in child["attempt_history"]] == ["lost", "succeeded"]
    assert child["attempts"] == 1  # the lost attempt was the machine's, not the code's


def test_cancel_stops_running_and_queued_calls(
    server: tuple[TestClient, Any], work: str, data_dir: Path
) -> None:
    client, engine = server
    rid = client.post("/applications/fan", json=work).json()["request_id"]
    wait_for_file(Path(work, "effects.log"))
    r = client.delete(f"/applications/fan/requests/{rid}")
    assert r.status_code == 200 and r.json() == {"id": rid, "status": "cancelled"}
    status = status_of(client, "fan", rid)
    assert status["status"] == "cancelled" and status["error"]["reason"] == "cancelled"
    out = client.get(f"/applications/fan/requests/{rid}/output")
    assert out.status_code == 409 and out.json()["error"]["code"] == "cancelled"
    again = client.delete(f"/applications/fan/requests/{rid}")
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]["message"]
    assert sum(effects(work).values()) == 1  # one container: the three queued never started
    pool = engine.pools[("fan", 1, "queued_step")]
    assert pool.queue == type(pool.queue)() or all(c.run.finished for c in pool.queue)
    wait_until(lambda: not any(s.calls for s in pool.slots), 10, "its container to stop")


def test_unknown_request_cannot_be_cancelled(server: tuple[TestClient, Any]) -> None:
    client, _ = server
    r = client.delete("/applications/fan/requests/01aaaaaaaaaaaaaaaaaaaaaaaa")
    assert r.status_code == 404


def test_request_error_fails_at_once_without_retries(server: tuple[TestClient, Any]) -> None:
    client, _ = server
    r = client.post("/applications/stops_early", params={"wait": 60})
    assert r.status_code == 500 and r.json()["error"]["reason"] == "request_error"
    calls = status_of(client, "stops_early", r.headers["x-cove-request-id"])["function_calls"]
    assert calls[0]["attempts"] == 1


def test_replay_reuses_recorded_outputs(server: tuple[TestClient, Any], work: str) -> None:
    client, _ = server
    r = client.post("/applications/repairable", params={"wait": 60}, json=work)
    assert r.status_code == 500
    rid = r.headers["x-cove-request-id"]
    assert client.post(f"/applications/repairable/requests/{rid}/replay").status_code == 200
    failed_again = client.get(
        f"/applications/repairable/requests/{rid}/output", params={"wait": 60}
    )
    assert failed_again.status_code == 500  # not fixed yet: same failure
    Path(work, "fixed").write_text("yes")
    r = client.post(f"/applications/repairable/requests/{rid}/replay")
    assert r.json()["request_id"] == rid
    out = client.get(f"/applications/repairable/requests/{rid}/output", params={"wait": 60})
    assert out.status_code == 200 and out.json() == 42
    assert effects(work)["stable"] == 1  # its output was reused by both replays
    status = status_of(client, "repairable", rid)
    assert status["status"] == "succeeded" and status["replay"]["count"] == 2
    again = client.post(f"/applications/repairable/requests/{rid}/replay")
    assert again.status_code == 409  # a succeeded request does not replay


def test_replay_on_an_upgraded_version_and_divergence(
    server: tuple[TestClient, Any], work: str
) -> None:
    client, _ = server
    deploy(client, "mend_v1.py")
    first = client.post("/applications/mended", params={"wait": 60}, json=work)
    second = client.post("/applications/mended", params={"wait": 60}, json=work)
    assert first.status_code == second.status_code == 500
    deploy(client, "mend_v2.py")
    rid = first.headers["x-cove-request-id"]
    r = client.post(f"/applications/mended/requests/{rid}/replay", params={"upgrade": True})
    assert r.json()["application_version"] == 2
    out = client.get(f"/applications/mended/requests/{rid}/output", params={"wait": 60})
    assert out.json() == 42
    assert status_of(client, "mended", rid)["application_version"] == 2
    assert effects(work)["stable"] == 2  # once per request; the replay reused it

    deploy(client, "mend_v3.py")
    rid = second.headers["x-cove-request-id"]
    client.post(f"/applications/mended/requests/{rid}/replay", params={"upgrade": True})
    out = client.get(f"/applications/mended/requests/{rid}/output", params={"wait": 60})
    assert out.json() == 52
    status = status_of(client, "mended", rid)
    assert status["replay"]["diverged_calls"] == ["0.0"]
    assert effects(work)["replacement"] == 1


def test_replay_without_upgrade_keeps_the_version(
    server: tuple[TestClient, Any], work: str
) -> None:
    client, _ = server
    r = client.post("/applications/repairable", params={"wait": 60}, json=work)
    rid = r.headers["x-cove-request-id"]
    Path(work, "fixed").write_text("yes")
    client.post(f"/applications/repairable/requests/{rid}/replay")
    out = client.get(f"/applications/repairable/requests/{rid}/output", params={"wait": 60})
    assert out.json() == 42
    assert status_of(client, "repairable", rid)["application_version"] == 1


@pytest.mark.parametrize(
    ("app", "fragment"),
    [("needs_a_big_machine", "needs 8 CPUs"), ("pinned", "pinned to region eu-west-1")],
)
def test_unsatisfiable_functions_fail_fast(
    server: tuple[TestClient, Any], app: str, fragment: str
) -> None:
    client, _ = server
    started = time.monotonic()
    r = client.post(f"/applications/{app}", params={"wait": 60}, json=1)
    assert time.monotonic() - started < 10
    err = r.json()["error"]
    assert r.status_code == 500 and err["reason"] == "constraint_unsatisfiable"
    status = status_of(client, app, r.headers["x-cove-request-id"])
    assert fragment in status["error"]["message"]


def test_a_constructor_past_its_init_timeout_fails_the_call(
    server: tuple[TestClient, Any],
) -> None:
    client, _ = server
    started = time.monotonic()
    r = client.post("/applications/slow_init", params={"wait": 60}, json=1)
    assert time.monotonic() - started < 20
    assert r.status_code == 500 and r.json()["error"]["reason"] == "function_timeout"


def test_a_cancelled_request_is_not_resumed_by_a_restart(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    data = tmp_path / "data"
    with TestClient(create_app(Settings(data_dir=data))) as client:
        deploy(client, "faults.py")
        body = {"work": str(work), "seconds": 30}
        rid = client.post("/applications/slow", json=body).json()["request_id"]
        wait_for_file(work / "started")
        assert client.delete(f"/applications/slow/requests/{rid}").status_code == 200
    app = create_app(Settings(data_dir=data))
    with TestClient(app) as client:
        assert rid not in app.state.engine.live
        assert status_of(client, "slow", rid)["status"] == "cancelled"


def test_a_container_over_its_memory_is_stopped_with_out_of_memory(
    server: tuple[TestClient, Any],
) -> None:
    client, _ = server
    started = time.monotonic()
    r = client.post("/applications/greedy", params={"wait": 60}, json=1500)
    assert time.monotonic() - started < 25  # stopped long before its 30 s sleep ends
    err = r.json()["error"]
    assert r.status_code == 500 and err["reason"] == "out_of_memory"
    status = status_of(client, "greedy", r.headers["x-cove-request-id"])
    assert "memory limit of 1 GB" in status["error"]["message"]
