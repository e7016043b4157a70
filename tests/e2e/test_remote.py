"""The same calls through ``run_local_application`` and ``run_remote_application`` against a
real ``cove server``: the local runner is the spec in miniature and must agree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cove import (
    File,
    RequestError,
    RequestFailed,
    SDKUsageError,
    SerializationError,
    run_local_application,
    run_remote_application,
)
from tests.apps import core
from tests.apps import parity_calls as pc
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
    srv.deploy(APPS / "parity_calls.py")
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


# -- definitions, calls and errors as in the Tensorlake SDK (issue 15, section 2) ------------
# tests/unit/test_tensorlake_calls.py checks the local runner against the SDK's; here the same
# apps run on a server and must agree with it.

PARITY_CASES: list[tuple[Any, tuple[Any, ...], dict[str, Any], Any]] = [
    (pc.function_first, (1,), {}, 2),
    (pc.no_parameters, (1, 2), {"unknown": 3}, "none"),
    (pc.function_first, (1, 2, 3), {"y": 4}, 2),
    (pc.small_resources, (4,), {}, 8),
    (pc.reports_progress, (2,), {}, ["SDKUsageError"] * 6),
    (
        pc.context_elsewhere,
        (1,),
        {},
        {
            "thread": "SDKUsageError",
            "process": "context",
            "process_state": "SDKUsageError",
            "own": "RequestContext",
        },
    ),
    (pc.retried_mutation, (2,), {}, 3),
    (pc.reading_from_dict, ("s",), {}, pc.Reading(sensor="s", value=1.5)),
    (pc.takes_reading, ({"sensor": "a", "value": 2},), {"scale": "3"}, 6.0),
]


@pytest.mark.parametrize(
    ("app", "args", "kwargs", "expected"), PARITY_CASES, ids=lambda c: getattr(c, "name", "")
)
def test_tensorlake_calls_agree(
    server: ServerProcess, app: Any, args: tuple[Any, ...], kwargs: dict[str, Any], expected: Any
) -> None:
    assert run_local_application(app, *args, **kwargs).output() == expected
    remote = run_remote_application(app, *args, server=server.url, **kwargs)
    assert remote.output(timeout=60) == expected


def test_remote_by_name_with_positional_arguments(server: ServerProcess) -> None:
    assert run_remote_application("function_first", 4, server=server.url).output(60) == 5
    assert run_remote_application("shout", "by position", server=server.url).output(60) == (
        "BY POSITION"
    )
    assert run_remote_application("takes_reading", {"sensor": "a", "value": 2}, 2,
                                  server=server.url).output(60) == 4.0  # fmt: skip
    request = run_remote_application("no_parameters", 1, extra=2, server=server.url)
    assert request.output(60) == "none"


def test_request_error_agrees(server: ServerProcess) -> None:
    errors = []
    for run in (run_local_application, lambda *a: run_remote_application(*a, server=server.url)):
        with pytest.raises(RequestError) as raised:
            run(pc.fails_with_request_error, "too big").output(timeout=60)
        errors.append(raised.value)
    for err in errors:
        assert isinstance(err, RequestFailed)
        assert err.message == str(err) == "rejected: too big"


@pytest.mark.parametrize("app", [pc.fails_with_value_error, pc.child_fails])
def test_failed_request_str_is_the_reason(server: ServerProcess, app: Any) -> None:
    errors = []
    with pytest.raises(RequestFailed) as local:
        run_local_application(app, 7).output()
    errors.append(local.value)
    with pytest.raises(RequestFailed) as remote:
        run_remote_application(app, 7, server=server.url).output(timeout=60)
    errors.append(remote.value)
    for err in errors:
        assert type(err) is RequestFailed
        assert str(err) == "function_error"
        assert "bad value 7" in err.message  # the readable text stays on .message
        assert err.details["error_type"] == "ValueError"


@pytest.mark.parametrize(
    ("app", "args", "kwargs"),
    [
        (pc.function_first, ("abc",), {}),
        (pc.takes_reading, ({"sensor": "a", "value": "high"},), {}),
        (pc.takes_reading, ({"sensor": "a", "value": 1},), {"scale": "x"}),
    ],
)
def test_value_that_cannot_be_encoded_raises_at_the_call(
    server: ServerProcess, app: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(SerializationError):
        run_local_application(app, *args, **kwargs)
    with pytest.raises(SerializationError):
        run_remote_application(app, *args, server=server.url, **kwargs)
    with pytest.raises(SerializationError):  # by name: checked against the server's manifest
        run_remote_application(app.name, *args, server=server.url, **kwargs)


def test_calling_a_non_application_agrees(server: ServerProcess) -> None:
    messages = set()
    for run in (run_local_application, lambda *a: run_remote_application(*a, server=server.url)):
        with pytest.raises(SDKUsageError) as raised:
            run(pc.not_an_application, 1)
        messages.add(str(raised.value))
    assert messages == {
        "Tensorlake Function 'not_an_application' is not an application function and cannot "
        "be run as an application. To make it an application function, add @application() "
        "decorator to it."
    }
