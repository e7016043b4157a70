"""Property-based fuzzing of the whole HTTP API from its OpenAPI document (schemathesis):
whatever arrives, a real server answers without a 5xx and stays healthy.

Bounded for CI: ``COVE_FUZZ_EXAMPLES`` examples per operation (default 15).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from tests.conftest import APPS, ServerProcess  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
EXAMPLES = int(os.environ.get("COVE_FUZZ_EXAMPLES", "15"))


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    data: Path = tmp_path_factory.mktemp("fuzz") / "data"
    server = ServerProcess(data, env={"COVE_MAX_WAIT": "2"}).start()
    try:
        with server.client() as c:
            assert c.put("/secrets/API_TOKEN", json={"value": "v"}).status_code == 204
            server.deploy(APPS / "guarded.py")
        yield schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    finally:
        server.stop()


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_a_server_error(case: object) -> None:
    case.call_and_validate(checks=[not_a_server_error], timeout=30)  # type: ignore[attr-defined]
