"""The JSON the dashboard needs beside the rest of the API: a request's input, its state
keys, and the requests list filtered by status."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.conftest import deployed_client


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with deployed_client(tmp_path_factory.mktemp("data"), "ui_apps.py") as c:
        yield c


def test_input_of_a_request(client: TestClient) -> None:
    r = client.post("/applications/echo", params={"wait": 60}, json="hello")
    rid = r.headers["x-cove-request-id"]
    assert client.get(f"/applications/echo/requests/{rid}/input").json() == {
        "request_id": rid,
        "input": {"text": "hello"},
    }
    assert client.get(f"/applications/echo/requests/{rid}/input/text").json() == "hello"
    missing = client.get(f"/applications/echo/requests/{rid}/input/other")
    assert missing.status_code == 404 and "other" in missing.json()["error"]["message"]
    assert client.get("/applications/echo/requests/nope/input").status_code == 404


def test_a_file_input_is_described_and_downloadable(client: TestClient) -> None:
    body = b"x" * 100_000  # past the inline limit: kept in the blob store
    r = client.post(
        "/applications/shout",
        params={"wait": 60},
        files={"doc": ("big.txt", body, "text/plain")},
    )
    rid = r.headers["x-cove-request-id"]
    url = f"/applications/shout/requests/{rid}/input/doc"
    described = client.get(f"/applications/shout/requests/{rid}/input").json()["input"]
    file = {"content_type": "text/plain", "size": 100_000, "url": url}
    assert described == {"doc": {"file": file}}
    got = client.get(url)
    assert got.content == body and got.headers["content-type"] == "text/plain"
    part = client.get(url, headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == b"x" * 10


def test_state_keys_of_a_request(client: TestClient) -> None:
    r = client.post("/applications/retried", params={"wait": 60})
    rid = r.headers["x-cove-request-id"]
    [key] = client.get(f"/applications/retried/requests/{rid}/state").json()["state"]
    assert key["key"] == "tries" and key["size"] > 0 and key["updated_at"]
    r = client.post("/applications/failing", params={"wait": 60}, json="no state")
    rid = r.headers["x-cove-request-id"]
    assert client.get(f"/applications/failing/requests/{rid}/state").json()["state"] == []
    assert client.get("/applications/failing/requests/nope/state").status_code == 404


def test_requests_filtered_by_status_and_paged(client: TestClient) -> None:
    ids = {}
    for reason in ("a", "b", "c"):
        r = client.post("/applications/failing", params={"wait": 60}, json=reason)
        ids[reason] = r.headers["x-cove-request-id"]
    listed = client.get("/applications/failing/requests", params={"status": "failed", "limit": 2})
    first = listed.json()
    assert [x["id"] for x in first["requests"]] == [ids["c"], ids["b"]]
    assert all(x["status"] == "failed" for x in first["requests"])
    rest = client.get(
        "/applications/failing/requests",
        params={"status": "failed", "limit": 2, "cursor": first["next_cursor"]},
    ).json()
    assert ids["a"] in [x["id"] for x in rest["requests"]]
    none = client.get("/applications/failing/requests", params={"status": "succeeded"}).json()
    assert none == {"requests": [], "next_cursor": None}
    assert client.get("/applications/failing/requests?status=bogus").status_code == 422
