"""Definitions, calls and errors as in the Tensorlake SDK's local runner (issue 15, section 2).

Each expectation here was checked against ``tensorlake`` 0.5.163's ``run_local_application``;
tests/e2e/test_remote.py runs the same apps on a server.
"""

from __future__ import annotations

from typing import Any

import pytest

from cove import (
    RequestError,
    RequestFailed,
    SDKUsageError,
    SerializationError,
    run_local_application,
    run_remote_application,
)
from tests.apps import parity_calls as pc


def output(app: Any, *args: Any, **kwargs: Any) -> Any:
    return run_local_application(app, *args, **kwargs).output()


def test_function_above_application() -> None:
    assert pc.function_first.application is not None
    assert pc.function_first.application.tags == {"order": "function-first"}
    assert pc.function_first.config.retries is not None
    assert output(pc.function_first, 1) == 2


def test_extra_arguments_are_ignored() -> None:
    assert output(pc.no_parameters, 1, 2) == "none"
    assert output(pc.no_parameters, unknown=3) == "none"
    assert output(pc.function_first, 1, 2, 3, y=4) == 2


def test_application_by_name_with_positional_arguments() -> None:
    assert output("function_first", 4) == 5
    with pytest.raises(SDKUsageError, match="Function with name 'no_such_app' is not defined"):
        run_local_application("no_such_app", 1)


def test_request_error_reaches_the_caller_as_request_error() -> None:
    request = run_local_application(pc.fails_with_request_error, "too big")
    with pytest.raises(RequestError) as raised:
        request.output()
    assert isinstance(raised.value, RequestFailed)
    assert raised.value.message == "rejected: too big"
    assert str(raised.value) == "rejected: too big"


@pytest.mark.parametrize("app", [pc.fails_with_value_error, pc.child_fails])
def test_failed_request_str_is_its_reason(app: Any) -> None:
    with pytest.raises(RequestFailed) as raised:
        output(app, 7)
    assert type(raised.value) is RequestFailed
    assert str(raised.value) == "function_error"
    # The readable text stays on .message (the CLI and the HTTP API print it).
    assert "bad value 7" in raised.value.message
    assert raised.value.details["error_type"] == "ValueError"


def test_small_resource_values() -> None:
    cfg = pc.small_resources.config
    assert (cfg.cpu, cfg.memory, cfg.ephemeral_disk) == (0.5, 0.5, 1.0)
    assert output(pc.small_resources, 4) == 8


def test_progress_update_with_attributes_and_wrong_types() -> None:
    assert output(pc.reports_progress, 2) == ["SDKUsageError"] * 6


def test_request_context_in_threads_and_child_processes() -> None:
    assert output(pc.context_elsewhere, 1) == {
        "thread": "SDKUsageError",
        "process": "context",
        "process_state": "SDKUsageError",
        "own": "RequestContext",
    }


@pytest.mark.parametrize(
    ("app", "args", "kwargs"),
    [
        (pc.function_first, ("abc",), {}),
        (pc.function_first, (object(),), {}),
        (pc.takes_reading, ({"sensor": "a", "value": "high"},), {}),
        (pc.takes_reading, ({"sensor": "a", "value": 1},), {"scale": "x"}),
    ],
)
def test_value_that_cannot_be_encoded_raises_at_the_call(
    app: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(SerializationError, match=f"application {app.name}"):
        run_local_application(app, *args, **kwargs)


def test_values_are_built_into_their_hints() -> None:
    assert output(pc.takes_reading, {"sensor": "a", "value": 2}, scale="3") == 6.0


def test_each_retry_gets_a_fresh_copy_of_the_arguments() -> None:
    assert output(pc.retried_mutation, 2) == 3


def test_pydantic_return_hint_builds_the_model_from_a_dict() -> None:
    assert output(pc.reading_from_dict, "s") == pc.Reading(sensor="s", value=1.5)
    assert output(pc.readings_from_dicts, 2) == [
        pc.Reading(sensor="s0", value=0),
        pc.Reading(sensor="s1", value=1),
    ]


NOT_AN_APPLICATION = (
    "Tensorlake Function 'not_an_application' is not an application function and cannot be "
    "run as an application. To make it an application function, add @application() "
    "decorator to it."
)


@pytest.mark.parametrize("how", [run_local_application, run_remote_application])
def test_calling_a_non_application_says_so(how: Any) -> None:
    with pytest.raises(SDKUsageError) as raised:
        how(pc.not_an_application, 1)
    assert str(raised.value) == NOT_AN_APPLICATION
    with pytest.raises(SDKUsageError) as by_name:
        run_local_application("not_an_application", 1)
    assert str(by_name.value) == NOT_AN_APPLICATION
