"""A call's threads and forked children in containers (issue 15): the apps of
tests/apps/forked_child.py give on a server what tests/unit/test_threads_and_forks.py checks
``run_local_application`` gives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import deployed_client
from tests.unit.test_threads_and_forks import FORKED_CHILD, USER_THREAD


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data: Path = tmp_path_factory.mktemp("data")
    with deployed_client(data, "forked_child.py") as client:
        yield client


def invoke(client: TestClient, app: str, value: Any) -> Any:
    r = client.post(f"/applications/{app}", params={"wait": 120}, json=value)
    assert r.status_code == 200, r.text
    return r.json()


def test_request_context_in_a_forked_child(client: TestClient) -> None:
    # The child shares the container's channel socket but never writes to it: only the
    # request and call ids work there.
    assert invoke(client, "forked_child_context", 1) == FORKED_CHILD


def test_function_calls_from_a_thread_the_call_started(client: TestClient) -> None:
    assert invoke(client, "calls_from_a_user_thread", 2) == USER_THREAD
