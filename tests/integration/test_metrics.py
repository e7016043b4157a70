"""A request's custom metrics, and the server's Prometheus metrics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import deployed_client


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with deployed_client(tmp_path_factory.mktemp("data"), "watched.py") as c:
        yield c


def run(client: TestClient, app: str, body: Any) -> str:
    r = client.post(f"/applications/{app}", params={"wait": 60}, json=body)
    return str(r.headers["x-cove-request-id"])


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``, parsed by prometheus_client's own parser."""
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def sample(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_request_metrics_count_sum_min_max_per_name(client: TestClient) -> None:
    rid = run(client, "fan", 4)
    r = client.get(f"/applications/fan/requests/{rid}/metrics")
    assert r.status_code == 200
    metrics = r.json()["metrics"]
    assert metrics["fan_seconds"] == {
        "kind": "timer",
        "count": 2,
        "sum": 2.0,
        "min": 0.5,
        "max": 1.5,
    }
    assert metrics["items"] == {"kind": "counter", "count": 1, "sum": 4.0, "min": 4.0, "max": 4.0}
    assert metrics["squares"]["count"] == 4 and metrics["squares"]["sum"] == 4.0
    assert client.get("/applications/fan/requests/nope/metrics").status_code == 404


def test_prometheus_scrape_has_requests_latencies_pools_retries_timeouts(
    client: TestClient,
) -> None:
    before = scrape(client)
    run(client, "fan", 3)
    run(client, "wobbly", None)
    run(client, "overslept", None)
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("cove_requests_finished_total", application="fan", status="succeeded") == 1
    assert grew("cove_requests_finished_total", application="wobbly", status="succeeded") == 1
    assert grew("cove_requests_finished_total", application="overslept", status="failed") == 1
    assert grew("cove_call_duration_seconds_count", application="fan", function="square") == 3
    assert (
        grew("cove_call_duration_seconds_bucket", application="fan", function="square", le="+Inf")
        == 3
    )
    assert grew("cove_call_retries_total", application="wobbly", function="shaky") == 2
    assert (
        grew("cove_call_attempts_total", application="wobbly", function="shaky", status="failed")
        == 2
    )
    assert grew("cove_call_timeouts_total", application="overslept", function="sleepy") >= 1
    assert sample(after, "cove_cold_starts_total", application="fan", function="square") >= 1
    idle = sample(after, "cove_containers", application="fan", function="square", state="idle")
    busy = sample(after, "cove_containers", application="fan", function="square", state="busy")
    assert idle >= 1 and busy == 0  # the request is over: its containers wait for more
    assert sample(after, "cove_queue_depth", application="fan", function="square") == 0
    names = {name for name, _ in after}
    assert "cove_requests_in_flight" not in names or all(
        v == 0 for (n, _), v in after.items() if n == "cove_requests_in_flight"
    )
