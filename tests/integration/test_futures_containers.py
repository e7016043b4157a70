"""Futures and async functions in containers (issue 15 §2): the apps of
tests/apps/futures_parity.py on a server give what ``run_local_application`` gives."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cove import run_local_application
from cove.engine.settings import Settings
from cove.server import create_app
from tests.apps import futures_parity as fp
from tests.conftest import APPS


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("data")))
    with TestClient(app) as client:
        path = APPS / "futures_parity.py"
        r = client.post("/applications", files={"code": (path.name, path.read_bytes())})
        assert r.status_code == 201, r.text
        yield client


def invoke(client: TestClient, app: str, value: Any) -> Any:
    r = client.post(f"/applications/{app}", params={"wait": 120}, json=value)
    assert r.status_code == 200, r.text
    return r.json()


SAME_AS_LOCAL = [
    (fp.future_arguments, 5),
    (fp.future_collections, 3),
    (fp.future_ids, 0),
    (fp.async_calls, 4),
    (fp.returns_async_map, 3),
    (fp.run_later, 0.3),
    (fp.timeouts, 0),
    (fp.tail_with_future_argument, 1),
]


@pytest.mark.parametrize(("app", "value"), SAME_AS_LOCAL, ids=lambda c: getattr(c, "name", ""))
def test_server_agrees_with_the_local_runner(client: TestClient, app: Any, value: Any) -> None:
    assert invoke(client, app.name, value) == run_local_application(app, value).output()


def test_usage_and_pickling_errors_in_containers(client: TestClient) -> None:
    for app in (fp.usage_errors, fp.not_picklable):
        assert invoke(client, app.name, 0) == run_local_application(app, 0).output()


def test_returning_a_started_future_fails_in_a_container(client: TestClient) -> None:
    r = client.post("/applications/tail_of_started", params={"wait": 120}, json=1)
    assert "is already running, a tail call Future should not be started" in r.text, r.text


def test_sdk_call_from_a_user_thread_in_a_container(client: TestClient) -> None:
    out = invoke(client, "user_thread", 0)
    assert out[0][0] == "SDKUsageError", out
    assert "outside of a Cove function thread" in out[0][1]
    # The same in the local runner: a request is running there.
    local = run_local_application(fp.user_thread, 0).output()
    assert local[0][0] == "SDKUsageError", local
