"""The HTTP contract, against a server in this process (temporary SQLite, real containers)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cove.engine.settings import Settings
from cove.server import create_app
from tests.conftest import APPS


def deploy(client: TestClient, name: str) -> dict[str, Any]:
    path = APPS / name
    r = client.post("/applications", files={"code": (path.name, path.read_bytes())})
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp("data")
    with TestClient(create_app(Settings(data_dir=data))) as c:
        deploy(c, "core.py")
        yield c


def wait_output(client: TestClient, app: str, **kwargs: Any) -> Any:
    r = client.post(f"/applications/{app}", params={"wait": 60}, **kwargs)
    assert r.status_code == 200, r.text
    return r.json()


def error_of(r: Any) -> dict[str, Any]:
    body: dict[str, Any] = r.json()["error"]
    return body


# -- deploy and describe ------------------------------------------------------------------
def test_deploy_lists_applications_with_urls_and_schemas(client: TestClient) -> None:
    apps = {a["name"]: a for a in client.get("/applications").json()["applications"]}
    assert {"noargs", "shout", "combine", "upload"} <= set(apps)
    assert apps["shout"]["url"].endswith("/applications/shout")
    detail = client.get("/applications/combine").json()
    params = {p["name"]: p for p in detail["parameters"]}
    assert params["a"]["schema"] == {"type": "integer"}
    assert params["c"]["schema"]["properties"]["x"] == {"title": "X", "type": "integer"}
    assert params["d"]["required"] is False
    assert detail["return_schema"]["type"] == "object"
    assert client.get("/applications/upload").json()["returns_file"] is True


def test_deploy_rejects_bad_code_and_changes_nothing(client: TestClient) -> None:
    before = client.get("/applications").json()
    r = client.post(
        "/applications", files={"code": ("bad_cpu.py", (APPS / "bad_cpu.py").read_bytes())}
    )
    assert r.status_code == 400
    assert "too_small" in error_of(r)["message"] and "cpu" in error_of(r)["message"]
    r = client.post("/applications", files={"code": ("x.py", b"def broken(:\n")})
    assert r.status_code == 400 and "SyntaxError" in error_of(r)["message"]
    r = client.post("/applications", files={"code": ("not python.txt", b"")})
    assert r.status_code == 400
    r = client.post("/applications", content=b"nothing")
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_input"
    assert client.get("/applications").json() == before


def test_health_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    paths = client.get("/openapi.json").json()["paths"]
    assert "/applications/{app}/requests/{request_id}/output" in paths


# -- inputs -------------------------------------------------------------------------------
def test_no_arguments_single_json_and_any(client: TestClient) -> None:
    assert wait_output(client, "noargs") == "hello"
    assert wait_output(client, "shout", json="quiet") == "QUIET"
    assert wait_output(client, "anything", json=[1, {"a": None}]) == {"got": [1, {"a": None}]}


def test_several_arguments_by_multipart_and_by_json_object(client: TestClient) -> None:
    files = {
        "a": (None, "1"),
        "b": (None, json.dumps(["x", "y"])),
        "c": (None, json.dumps({"x": 3})),
        "ignored": (None, "42"),
    }
    expected = {"a": 1, "b": ["x", "y"], "c": {"x": 3, "y": 0}, "d": "none"}
    assert wait_output(client, "combine", files=files) == expected
    body = {"a": 1, "b": ["x", "y"], "c": {"x": 3}, "d": 7, "extra": True}
    assert wait_output(client, "combine", json=body) == {**expected, "d": 7}


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"files": {"b": (None, "[]"), "c": (None, '{"x": 1}')}}, "missing required argument 'a'"),
        ({"json": {"a": "one", "b": [], "c": {"x": 1}}}, "parameter 'a'"),
        ({"json": {"a": 1, "b": [1], "c": {"x": 1}}}, "parameter 'b'[0]"),
        ({"json": {"a": 1, "b": [], "c": {"y": 1}}}, "parameter 'c'"),
        ({"json": {"a": 1, "b": [], "c": {"x": 1}, "d": 1.5}}, "parameter 'd'"),
        (
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            "not valid JSON",
        ),
        (
            {"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data"}},
            "multipart",
        ),
        ({"json": [1, 2]}, "takes 4 parameters"),
    ],
)
def test_bad_input_is_a_400_naming_what_was_wrong(
    client: TestClient, kwargs: dict[str, Any], fragment: str
) -> None:
    before = client.get("/applications/combine/requests").json()["requests"]
    r = client.post("/applications/combine", **kwargs)
    assert r.status_code == 400, r.text
    assert error_of(r)["code"] == "invalid_input"
    assert fragment in error_of(r)["message"]
    assert client.get("/applications/combine/requests").json()["requests"] == before


def test_unknown_application_is_404(client: TestClient) -> None:
    r = client.post("/applications/nope", json=1)
    assert r.status_code == 404 and error_of(r)["code"] == "application_not_found"
    assert client.get("/applications/nope/requests/xyz").status_code == 404
    r = client.get("/applications/shout/requests/01aaaaaaaaaaaaaaaaaaaaaaaa")
    assert r.status_code == 404 and error_of(r)["code"] == "request_not_found"


def test_file_in_and_out_keeps_bytes_and_content_type(client: TestClient) -> None:
    r = client.post(
        "/applications/upload",
        params={"wait": 60},
        content=b"abc",
        headers={"content-type": "text/x-note"},
    )
    assert r.status_code == 200 and r.content == b"ABC"
    assert r.headers["content-type"] == "text/x-note"
    r = client.post(
        "/applications/upload", params={"wait": 60}, files={"doc": ("a.txt", b"xyz", "text/plain")}
    )
    assert r.content == b"XYZ" and r.headers["content-type"] == "text/plain"
    out = wait_output(
        client,
        "upload_and_label",
        files={
            "doc": ("d.bin", b"\x00\x01\x02", "application/octet-stream"),
            "label": (None, "raw text"),
        },
    )
    assert out == {"label": "raw text", "size": 3, "type": "application/octet-stream"}
    r = client.post("/applications/upload_and_label", json={"doc": "x", "label": "y"})
    assert r.status_code == 400 and "expects a file" in error_of(r)["message"]


# -- requests -----------------------------------------------------------------------------
def test_request_id_status_output_and_listing(client: TestClient) -> None:
    r = client.post("/applications/shout", json="a")
    rid = r.json()["request_id"]
    out = client.get(f"/applications/shout/requests/{rid}/output", params={"wait": 60})
    assert out.status_code == 200 and out.json() == "A"
    status = client.get(f"/applications/shout/requests/{rid}").json()
    assert status["id"] == rid and status["status"] == "succeeded"
    assert status["application_version"] == 1 and status["error"] is None
    assert status["created_at"] and status["finished_at"]
    assert [c["function"] for c in status["function_calls"]] == ["shout"]
    ids = [client.post("/applications/shout", json=str(i)).json()["request_id"] for i in range(3)]
    page1 = client.get("/applications/shout/requests", params={"limit": 2}).json()
    assert [r["id"] for r in page1["requests"]] == ids[::-1][:2]
    page2 = client.get(
        "/applications/shout/requests", params={"limit": 2, "cursor": page1["next_cursor"]}
    ).json()
    assert page2["requests"][0]["id"] == ids[0]
    assert client.get("/applications/shout/requests", params={"cursor": "zz"}).status_code == 400
    assert client.post("/applications/shout", params={"wait": -1}, json="a").status_code == 400


def test_output_is_202_until_finished(client: TestClient) -> None:
    rid = client.post("/applications/slow", json=1.0).json()["request_id"]
    r = client.get(f"/applications/slow/requests/{rid}/output")
    assert r.status_code == 202 and r.json()["status"] in ("pending", "running")
    r = client.get(f"/applications/slow/requests/{rid}/output", params={"wait": 60})
    assert r.status_code == 200 and r.json() == 1.0


def test_idempotency_key_returns_the_same_request(client: TestClient) -> None:
    headers = {"Idempotency-Key": "order-17"}
    first = client.post("/applications/shout", json="once", headers=headers).json()
    again = client.post("/applications/shout", json="once", headers=headers).json()
    assert first == again
    r = client.post("/applications/shout", json="other", headers=headers)
    assert r.status_code == 409 and error_of(r)["code"] == "conflict"
    listed = client.get("/applications/shout/requests", params={"limit": 200}).json()["requests"]
    assert sum(1 for x in listed if x["id"] == first["request_id"]) == 1


def test_concurrent_idempotent_posts_create_one_request(client: TestClient) -> None:
    ids: list[str] = []

    def post() -> None:
        r = client.post("/applications/shout", json="race", headers={"Idempotency-Key": "race"})
        ids.append(r.json()["request_id"])

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1


# -- failures and retries -----------------------------------------------------------------
def test_retries_until_success_and_attempts_recorded(client: TestClient) -> None:
    r = client.post("/applications/retried", params={"wait": 60}, json=2)
    assert r.status_code == 200 and r.json() == 2
    rid = r.headers["x-cove-request-id"]
    calls = client.get(f"/applications/retried/requests/{rid}").json()["function_calls"]
    child = next(c for c in calls if c["function"] == "flaky_child")
    assert child["attempts"] == 3 and child["status"] == "succeeded"


def test_failure_after_retries_names_the_function(client: TestClient) -> None:
    r = client.post("/applications/retried", params={"wait": 60}, json=5)
    assert r.status_code == 500
    err = error_of(r)
    assert err["function_name"] == "flaky_child" and "failure 4" in err["message"]
    status = client.get(f"/applications/retried/requests/{err['request_id']}").json()
    assert status["status"] == "failed"
    assert status["error"]["function_name"] == "flaky_child"
    assert "RuntimeError" in status["error"]["traceback"]


def test_caller_can_catch_a_child_failure(client: TestClient) -> None:
    assert wait_output(client, "caught", json=1) == "handled FunctionError: RuntimeError: failure 1"


def test_request_error_fails_the_request(client: TestClient) -> None:
    r = client.post("/applications/request_error", params={"wait": 60})
    assert r.status_code == 500
    assert error_of(r)["reason"] == "request_error"
    assert "bad request input" in error_of(r)["message"]


# -- versions and deletion ----------------------------------------------------------------
def test_redeploy_creates_a_version_and_running_requests_keep_theirs(
    client: TestClient,
) -> None:
    assert deploy(client, "versioned_v1.py")["applications"][0]["version"] == 1
    old = client.post("/applications/versioned", json={"x": 1, "wait": 1.5}).json()["request_id"]
    assert deploy(client, "versioned_v2.py")["applications"][0]["version"] == 2
    assert wait_output(client, "versioned", json={"x": 2}) == "v2:2"
    r = client.get(f"/applications/versioned/requests/{old}/output", params={"wait": 60})
    assert r.json() == "v1:1"
    status = client.get(f"/applications/versioned/requests/{old}").json()
    assert status["application_version"] == 1
    assert client.get("/applications/versioned").json()["versions"] == [1, 2]


def test_delete_application(client: TestClient, tmp_path: Path) -> None:
    deploy(client, "versioned_v1.py")
    assert client.delete("/applications/versioned").status_code == 204
    assert client.get("/applications/versioned").status_code == 404
    assert client.post("/applications/versioned", json={"x": 1}).status_code == 404
    assert client.delete("/applications/versioned").status_code == 404


def test_the_answer_follows_the_commit(client: TestClient) -> None:
    from cove.store import journal as j

    engine = client.app.state.engine  # type: ignore[attr-defined]
    for _ in range(20):
        rid = client.post("/applications/shout", json="durable").json()["request_id"]
        row = engine.store.read_sync(lambda c, rid=rid: j.get_request(c, rid))
        assert row is not None and row["app"] == "shout"
