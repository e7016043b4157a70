"""Errors on Tensorlake's routes (/v1/...) come from the same mapping as Cove's own: the same
status, and a 503 says when to try again, as the SDK's retries expect."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import deployed_client


def test_a_server_that_does_not_accept_requests_answers_503_with_retry_after(
    tmp_path: Path,
) -> None:
    with deployed_client(tmp_path / "data", "core.py") as client:
        client.app.state.engine.begin_shutdown()  # type: ignore[attr-defined]
        cove = client.post("/applications/noargs")
        v1 = client.post("/v1/namespaces/default/applications/noargs")
        assert cove.status_code == v1.status_code == 503
        assert cove.headers["Retry-After"] == v1.headers["Retry-After"]
        assert int(v1.headers["Retry-After"]) >= 1
        assert v1.headers["content-type"].startswith("text/plain")  # the SDK shows the text
        assert v1.text == cove.json()["error"]["message"]
