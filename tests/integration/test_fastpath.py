"""The per-call routes' short path (cove.server.fastpath) answers exactly as FastAPI's routes
do: the same statuses, bodies and headers for successes and for each kind of error, behind
the same Guard; and it leaves to FastAPI every request it does not parse trivially."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from cove.server.fastpath import FastPath
from tests.conftest import deployed_client


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with deployed_client(tmp_path_factory.mktemp("fastpath"), "core.py") as c:
        yield c


def _scope(method: str, path: str, query: bytes = b"") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "query_string": query}


@pytest.mark.parametrize(
    ("method", "path", "query", "taken"),
    [
        ("POST", "/applications/shout", b"", True),
        ("POST", "/applications/shout", b"wait=30", True),
        ("POST", "/applications/shout", b"wait=0.5&other=x", True),
        ("POST", "/applications/shout", b"wait=abc", False),  # FastAPI says why (422)
        ("POST", "/applications/shout", b"wait=1&wait=2", False),
        ("POST", "/applications/shout", b"wait=-1", False),
        ("POST", "/applications/shout/", b"", False),  # FastAPI redirects
        ("GET", "/applications/shout", b"", False),  # another route
        ("GET", "/applications/shout/requests/r1", b"", True),
        ("GET", "/applications/shout/requests/r1/output", b"wait=2", True),
        ("GET", "/applications/shout/requests/r1/logs", b"", False),
        ("DELETE", "/applications/shout/requests/r1", b"", False),
        ("POST", "/v1/namespaces/default/applications/shout", b"", True),
        ("GET", "/v1/namespaces/default/applications/shout/requests/r1", b"", True),
        ("GET", "/v1/namespaces/default/applications/shout/requests/r1/output", b"", True),
        ("GET", "/v1/namespaces/default/applications/shout/requests/r1/progress", b"", False),
        ("POST", "/v1/namespaces//applications/shout", b"", False),
    ],
)
def test_which_requests_take_the_short_path(
    method: str, path: str, query: bytes, taken: bool, tmp_path: Path
) -> None:
    from cove.engine.settings import Settings

    fast = FastPath(Settings(data_dir=tmp_path))
    assert fast.takes(_scope(method, path, query)) is taken


def _both(client: TestClient, method: str, url: str, **kwargs: Any) -> list[httpx.Response]:
    """The same request answered on the short path, then by FastAPI alone."""
    app = client.app
    fast = app.fast_path  # type: ignore[attr-defined]
    answers = [client.request(method, url, **kwargs)]
    app.fast_path = None  # type: ignore[attr-defined]
    try:
        answers.append(client.request(method, url, **kwargs))
    finally:
        app.fast_path = fast  # type: ignore[attr-defined]
    return answers


def _same(answers: list[httpx.Response], ignore: tuple[str, ...] = ()) -> httpx.Response:
    fast, slow = answers
    assert fast.status_code == slow.status_code
    assert fast.headers.get("content-type") == slow.headers.get("content-type")
    for name in ("x-cove-request-id", "retry-after"):
        if name not in ignore:
            assert fast.headers.get(name) == slow.headers.get(name)
    if "body" not in ignore:
        assert fast.content == slow.content
    return fast


def test_invoke_and_its_errors_answer_alike(client: TestClient) -> None:
    ok = _same(
        _both(client, "POST", "/applications/shout?wait=30", json="hi"),
        ("body", "x-cove-request-id"),
    )
    assert ok.json() == "HI"
    started = _same(
        _both(client, "POST", "/applications/shout", json="hi"), ("body", "x-cove-request-id")
    )
    assert set(started.json()) == {"request_id"}
    missing = _same(_both(client, "POST", "/applications/nothing?wait=1", json=1))
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "application_not_found"
    bad = _same(_both(client, "POST", "/applications/shout?wait=1", json=5))
    assert bad.status_code == 400 and "text" in bad.json()["error"]["message"]
    too_long = _same(_both(client, "POST", "/applications/shout?wait=99999", json="x"))
    assert too_long.status_code == 400 and "wait must be between" in too_long.text


def test_status_and_output_answer_alike(client: TestClient) -> None:
    rid = client.post("/applications/shout?wait=30", json="abc").headers["x-cove-request-id"]
    output = _same(_both(client, "GET", f"/applications/shout/requests/{rid}/output"))
    assert output.json() == "ABC"
    status = _same(_both(client, "GET", f"/applications/shout/requests/{rid}"))
    assert status.json()["status"] == "succeeded"
    gone = _same(_both(client, "GET", "/applications/shout/requests/nope/output"))
    assert gone.status_code == 404


def test_tensorlake_routes_answer_alike_with_text_errors(client: TestClient) -> None:
    base = "/v1/namespaces/default/applications"
    started = _same(
        _both(client, "POST", f"{base}/shout", json="hey"), ("body", "x-cove-request-id")
    )
    rid = started.json()["request_id"]
    client.get(f"/applications/shout/requests/{rid}/output?wait=30")
    output = _same(_both(client, "GET", f"{base}/shout/requests/{rid}/output"))
    assert output.json() == "HEY"
    _same(_both(client, "GET", f"{base}/shout/requests/{rid}"))
    missing = _same(_both(client, "POST", f"{base}/nothing", json=1))
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/plain")
    assert "nothing" in missing.text
