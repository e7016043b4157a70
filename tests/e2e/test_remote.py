"""The same calls through ``run_local_application`` and ``run_remote_application`` against a
real ``cove server``: the local runner is the spec in miniature and must agree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cove import File, RequestFailed, run_local_application, run_remote_application
from tests.apps import core
from tests.conftest import APPS, ServerProcess

pytestmark = pytest.mark.slow

CASES: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = [
    (core.noargs, (), {}),
    (core.shout, ("quiet",), {}),
    (core.combine, (1, ["a"], core.Point(x=2)), {"d": 5}),
    (core.anything, ({"nested": [1, None]},), {}),
    (core.upload, (File(b"bytes", "text/x-test"),), {}),
    (core.upload_and_label, (File(b"abc", "text/plain"), "label"), {}),
    (core.retried, (2,), {}),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("remote")
    srv = ServerProcess(root / "data").start()
    srv.deploy(APPS / "core.py")
    yield srv
    srv.kill()
    for record in (root / "data" / "containers").glob("*"):
        import contextlib
        import os
        import signal

        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            os.killpg(int(record.name), signal.SIGKILL)


@pytest.mark.parametrize(("app", "args", "kwargs"), CASES, ids=lambda c: getattr(c, "name", ""))
def test_local_and_remote_agree(
    server: ServerProcess, app: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    local = run_local_application(app, *args, **kwargs).output()
    remote_request = run_remote_application(app, *args, server=server.url, **kwargs)
    assert len(remote_request.id) == 36
    remote = remote_request.output(timeout=60)
    assert remote == local


def test_failures_agree(server: ServerProcess) -> None:
    with pytest.raises(RequestFailed) as local:
        run_local_application(core.request_error).output()
    with pytest.raises(RequestFailed) as remote:
        run_remote_application(core.request_error, server=server.url).output(timeout=60)
    assert local.value.message in remote.value.message
    with pytest.raises(RequestFailed) as remote_fn:
        run_remote_application(core.retried, 9, server=server.url).output(timeout=60)
    assert remote_fn.value.details["function_name"] == "flaky_child"


def test_remote_by_name(server: ServerProcess, tmp_path: Path) -> None:
    request = run_remote_application("shout", text="by name", server=server.url)
    assert request.output(timeout=60) == "BY NAME"


def test_an_output_that_does_not_match_its_return_hint_fails_the_request(
    server: ServerProcess,
) -> None:
    failures = []
    with pytest.raises(RequestFailed) as local:
        run_local_application(core.forgets_to_return, "x").output()
    failures.append(local.value)
    with pytest.raises(RequestFailed) as remote:
        run_remote_application(core.forgets_to_return, "x", server=server.url).output(timeout=60)
    failures.append(remote.value)
    for failure in failures:
        assert failure.details["reason"] == "function_error"
        assert failure.details["error_type"] == "SerializationError"
        assert "forgets_to_return" in failure.message
        assert "return type hint str" in failure.message
