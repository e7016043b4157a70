"""A blob the journal refers to but the blob store lacks (deleted, or written to another
replica's store) fails what needs it with ``blob_missing``, naming the blob and the store,
never with ``internal error: '<key>'``: a payload read by the HTTP API, a payload read when a
request is resumed, and code read by a replica that did not deploy it."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import sqlalchemy
from fastapi.testclient import TestClient

from cove.engine.engine import Engine
from cove.engine.settings import Settings
from cove.errors import BlobMissingError, ErrorCode, blob_missing, error_from_dict
from cove.sdk.execution import classify
from cove.server import create_app
from cove.server.errors import STATUS_OF
from cove.store import journal as j
from cove.store import schema
from tests.conftest import APPS, wait_until


def _settings(tmp_path: Path, **more: Any) -> Settings:
    # Every payload goes to the blob store, however small.
    return Settings(data_dir=tmp_path / "data", inline_payload_limit=0, **more)


def _deploy(client: TestClient, name: str = "durable.py") -> None:
    path = APPS / name
    r = client.post("/applications", files={"code": (path.name, path.read_bytes())})
    assert r.status_code == 201, r.text


def _root_call(engine: Engine, request_id: str) -> dict[str, Any]:
    root = engine.store.read_sync(lambda c: j.root_call(c, request_id))
    assert root is not None
    return dict(root)


def _assert_names(error: dict[str, Any], key: str, store: str) -> None:
    assert key in error["message"] and store in error["message"], error
    assert "internal error" not in error["message"]


def test_an_output_whose_blob_is_missing_is_blob_missing(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    app = create_app(_settings(tmp_path))
    with TestClient(app) as client:
        engine: Engine = app.state.engine
        _deploy(client)
        body = {"log": str(work / "log"), "steps": 1}
        r = client.post("/applications/durable_job", params={"wait": 60}, json=body)
        assert r.status_code == 200, r.text
        rid = r.headers["X-Cove-Request-Id"]
        key = _root_call(engine, rid)["output_blob"]
        assert key
        engine.blobs.delete(key)
        engine.recent.clear()  # read from the journal, as another replica would

        r = client.get(f"/applications/durable_job/requests/{rid}/output")
        assert r.status_code == 500, r.text
        error = r.json()["error"]
        assert error["code"] == "blob_missing"
        store = engine.container_env["COVE_BLOB_URL"]  # the store's URL
        assert error["key"] == key and error["store"] == store
        _assert_names(error, key, store)


def test_a_resumed_request_whose_arguments_blob_is_missing_fails_with_blob_missing(
    tmp_path: Path,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    log = work / "log"
    app = create_app(_settings(tmp_path))
    with TestClient(app) as client:
        engine: Engine = app.state.engine
        _deploy(client)
        body = {"log": str(log), "steps": 2, "block_at": 0}
        rid = client.post("/applications/durable_job", json=body).json()["request_id"]
        wait_until(lambda: log.exists() and "start step0" in log.read_text())
        key = _root_call(engine, rid)["args_blob"]
        assert key
        store = engine.container_env["COVE_BLOB_URL"]
    # The server stopped with the request unfinished; its arguments' blob goes.
    engine.blobs.delete(key)

    app = create_app(_settings(tmp_path))
    with TestClient(app) as client:  # starts: the request is resumed, and fails
        r = client.get(f"/applications/durable_job/requests/{rid}/output", params={"wait": 60})
        assert r.status_code == 500, r.text
        error = r.json()["error"]
        assert error["code"] == "request_failed" and error["reason"] == "blob_missing"
        assert error["error_type"] == "BlobMissingError"
        _assert_names(error, key, store)
        record = client.get(f"/applications/durable_job/requests/{rid}").json()
        assert record["status"] == "failed"
        assert record["error"]["reason"] == "blob_missing"


def test_a_replica_lacking_a_versions_code_blob_answers_blob_missing(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two replicas on one PostgreSQL database and one blob store: A deploys, the code's
    blob is then lost; B (which never had the code) starts anyway and answers calls of that
    version with blob_missing, while A, which has the code, runs them."""
    blobs = f"file://{tmp_path / 'blobs'}"

    def settings(name: str) -> Settings:
        return Settings(data_dir=tmp_path / name, database_url=postgres_url, blob_url=blobs)

    app_a = create_app(settings("a"))
    with TestClient(app_a) as a:
        engine: Engine = app_a.state.engine
        _deploy(a, "core.py")
        versions = schema.app_versions
        code = engine.store.read_sync(
            lambda c: c.execute(sqlalchemy.select(versions.c.code_blob).limit(1)).scalar()
        )
        assert code
        engine.blobs.delete(code)

        with TestClient(create_app(settings("b"))) as b:
            r = b.post("/applications/shout", params={"wait": 60}, json="quiet")
            assert r.status_code == 500, r.text
            error = r.json()["error"]
            assert error["code"] == "blob_missing"
            assert error["key"] == code
            _assert_names(error, code, engine.container_env["COVE_BLOB_URL"])
            assert b.get("/applications/shout").json()["error"]["code"] == "blob_missing"
            listed = b.get("/applications").json()["applications"]
            assert "shout" not in [x["name"] for x in listed]
        r = a.post("/applications/shout", params={"wait": 60}, json="quiet")
        assert r.status_code == 200 and r.json() == "QUIET"


def test_blob_missing_crosses_processes_and_the_http_api() -> None:
    """In a container, a File whose blob is missing fails its call with reason
    blob_missing (not retried: the blob will not come back); a client rebuilds the error."""
    err = blob_missing("ab" * 32, "s3://bucket/cove/")
    failure = classify("reader", err)
    assert failure.reason == "blob_missing" and not failure.retryable()
    assert failure.message == err.message and failure.error_type == "BlobMissingError"
    back = error_from_dict(err.to_dict())
    assert isinstance(back, BlobMissingError) and back.details == err.details
    assert str(pickle.loads(pickle.dumps(err))) == err.message
    assert STATUS_OF[ErrorCode.BLOB_MISSING] == 500
