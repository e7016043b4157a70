"""A request's timeline: every call and attempt, with parents, containers and times."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import deployed_client


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with deployed_client(tmp_path_factory.mktemp("data"), "watched.py") as c:
        yield c


def run(client: TestClient, app: str, body: Any) -> str:
    r = client.post(f"/applications/{app}", params={"wait": 60}, json=body)
    return str(r.headers["x-cove-request-id"])


def timeline(client: TestClient, app: str, rid: str) -> dict[str, Any]:
    r = client.get(f"/applications/{app}/requests/{rid}/timeline")
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def test_every_call_with_parent_function_container_and_times(client: TestClient) -> None:
    rid = run(client, "fan", 3)
    data = timeline(client, "fan", rid)
    assert data["status"] == "succeeded" and data["duration"] > 0
    calls = {c["id"]: c for c in data["calls"]}
    assert set(calls) == {"0", "0.0.0", "0.0.1", "0.0.2"}
    assert calls["0"]["parent_id"] is None and calls["0"]["function"] == "fan"
    for cid in ("0.0.0", "0.0.1", "0.0.2"):
        call = calls[cid]
        assert call["parent_id"] == "0" and call["function"] == "square"
        [attempt] = call["attempt_history"]
        assert attempt["status"] == "succeeded" and attempt["container"]
        # Queued, then started, then finished; all inside the parent's run.
        assert ts(call["queued_at"]) <= ts(attempt["started_at"]) <= ts(attempt["finished_at"])
        assert 0 <= attempt["start"] <= attempt["end"] <= data["duration"]
        root = calls["0"]["attempt_history"][0]
        assert root["start"] <= attempt["start"] and attempt["end"] <= root["end"]


def test_retries_are_visible_attempt_by_attempt(client: TestClient) -> None:
    rid = run(client, "wobbly", None)
    calls = {c["id"]: c for c in timeline(client, "wobbly", rid)["calls"]}
    shaky = calls["0.0"]
    assert shaky["status"] == "succeeded" and shaky["attempts"] == 3
    history = shaky["attempt_history"]
    assert [a["attempt"] for a in history] == [1, 2, 3]
    assert [a["status"] for a in history] == ["failed", "failed", "succeeded"]
    assert history[0]["error"]["message"] == "RuntimeError: shaky failure 1"
    assert history[0]["queued_at"] == shaky["queued_at"]
    for before, after in itertools.pairwise(history):
        assert after["queued_at"] == before["finished_at"]  # queued again when it failed
        assert before["end"] <= after["start"]


def test_timeouts_and_unknown_requests(client: TestClient) -> None:
    rid = run(client, "overslept", None)
    calls = {c["id"]: c for c in timeline(client, "overslept", rid)["calls"]}
    assert calls["0.0"]["status"] == "failed"
    last = calls["0.0"]["attempt_history"][-1]
    assert last["error"]["reason"] == "function_timeout" and last["end"] - last["start"] >= 1
    assert client.get("/applications/overslept/requests/nope/timeline").status_code == 404
