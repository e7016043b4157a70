"""run_local_application: the programming model in one process."""

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import cove
from cove import File, RequestFailed, SDKUsageError, run_local_application
from cove.sdk.context import current_scope

from .apps import asyncs, basic, classes, failures, futures_app, state_app


def run(app: Any, *args: Any, **kwargs: Any) -> Any:
    return run_local_application(app, *args, **kwargs).output()


def failure(app: Any, *args: Any, **kwargs: Any) -> RequestFailed:
    request = run_local_application(app, *args, **kwargs)
    with pytest.raises(RequestFailed) as e:
        request.output()
    return e.value


@pytest.fixture(autouse=True)
def _reset_attempts() -> None:
    failures.reset()


# -- inputs and outputs -----------------------------------------------------------------------


def test_no_arguments() -> None:
    assert run(basic.hello) == "hello"


def test_single_string() -> None:
    assert run(basic.greet, "Ada") == "Hello, Ada!"
    assert run(basic.greet, name="Bob") == "Hello, Bob!"


def test_several_arguments_with_default() -> None:
    assert run(basic.several, 1, "b", [0.5, 1.5]) == {"a": 1, "b": "b", "sum": 2.0, "d": True}
    assert run(basic.several, 2, c=[1.0], b="x", d=False) == {
        "a": 2,
        "b": "x",
        "sum": 1.0,
        "d": False,
    }


def test_default_argument() -> None:
    assert run(basic.with_default) == 7
    assert run(basic.with_default, 3) == 3


def test_unknown_keyword_arguments_are_ignored() -> None:
    assert run(basic.greet, "Ada", removed_field=1) == "Hello, Ada!"


def test_missing_argument_fails_the_request() -> None:
    err = failure(basic.greet)
    assert err.code is cove.ErrorCode.DESERIALIZATION
    assert "name" in err.message
    assert err.details["parameter"] == "name"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_wrong_argument_type_raises_at_the_call() -> None:
    # As in the Tensorlake SDK: a value that cannot be encoded to its parameter's hint is a
    # SerializationError at the call (it used to be a Request that failed later).
    with pytest.raises(cove.SerializationError, match=r"several.*'a'") as raised:
        run_local_application(basic.several, "not an int", "b", [])
    assert raised.value.details["parameter"] == "a"


def test_extra_positional_arguments_are_ignored() -> None:
    # As in the Tensorlake SDK (it used to be "greet takes 1 argument(s), 2 were given").
    assert run(basic.greet, "a", "b") == "Hello, a!"


def test_needs_an_application() -> None:
    # The Tensorlake SDK's words; an unknown name is not defined (both used to say "needs
    # an @application function").
    with pytest.raises(SDKUsageError, match="'double' is not an application function"):
        run_local_application(basic.double, 1)
    with pytest.raises(SDKUsageError, match="Function with name 'nothing' is not defined"):
        run_local_application("nothing")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_pydantic_in_and_out() -> None:
    order = basic.Order(
        customer="Ada",
        items=[basic.Item(name="tea", price=2.5), basic.Item(name="cake", price=4)],
    )
    receipt = run(basic.checkout, order)
    assert isinstance(receipt, basic.Receipt)
    assert receipt == basic.Receipt(customer="Ada", total=6.5, names=["tea", "cake"])
    # The JSON form of the model works the same.
    as_json = {"customer": "Bo", "items": [{"name": "x", "price": 1}]}
    assert run(basic.checkout, as_json).total == 1.0


def test_union() -> None:
    assert run(basic.kind_of, "5") == "str"
    assert run(basic.kind_of, 5) == "int"


@pytest.mark.parametrize("value", ["s", 3, 2.5, False, None, [1, "a"], {"k": {"n": [1]}}])
def test_any(value: Any) -> None:
    assert run(basic.echo_any, value) == value
    assert run(basic.echo_unhinted, value) == value


def test_file_in_and_out() -> None:
    out = run(basic.shout_file, File(b"hello", "text/plain"))
    assert isinstance(out, File)
    assert out.content == b"HELLO"
    assert out.content_type == "text/plain"


def test_file_passed_to_a_child_function() -> None:
    assert run(basic.size_via_child, File(b"12345")) == 5


def test_request_id_is_the_requests() -> None:
    request = run_local_application(basic.request_id_of)
    assert request.output() == request.id
    assert request.id != run_local_application(basic.request_id_of).id
    assert repr(request) == f"<cove.Request {request.id}>"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_output_not_matching_return_hint_fails_the_request() -> None:
    # As on a server: the application's own failure (function_error), a SerializationError.
    err = failure(basic.wrong_return)
    assert err.details["reason"] == "function_error"
    assert err.details["error_type"] == "SerializationError"
    assert "wrong_return" in err.message


# -- calls, map, reduce, futures -----------------------------------------------------------------


def test_function_calling_function() -> None:
    assert run(basic.double_then_add, 5) == 11


def test_map_keeps_item_order() -> None:
    assert run(basic.squares, [0, 1, 2, 3, 4]) == [0, 1, 4, 9, 16]
    assert run(basic.squares, []) == []


def test_map_resolves_future_items() -> None:
    assert run(basic.map_of_futures, 3) == [12, 8]


def test_reduce_without_initial() -> None:
    assert run(basic.total, [1, 2, 3, 4]) == 10
    assert run(basic.total, [7]) == 7


def test_reduce_with_initial() -> None:
    assert run(basic.total_from, [1, 2, 3], 100) == 106
    assert run(basic.total_from, [], 100) == 100


def test_reduce_folds_left_in_order() -> None:
    assert run(basic.concat_all, ["a", "b", "c"]) == ">abc"


def test_reduce_of_empty_without_initial_fails() -> None:
    err = failure(basic.total, [])
    assert "initial value" in err.message


def test_future_run_result_done() -> None:
    assert run(futures_app.run_and_result) == {
        "before": False,
        "started": True,
        "value": 3,
        "after": True,
    }


def test_wait_first_completed() -> None:
    out = run(futures_app.first_completed)
    assert out == {"done": [1], "pending": 1, "pending_is_lazy": True, "lazy": 2}


def test_wait_all_completed() -> None:
    out = run(futures_app.all_completed)
    assert out == {"done": [1, 2, 3], "pending": 0, "done2": 3, "pending2": 0}


def test_wait_first_failure() -> None:
    out = run(futures_app.first_failure)
    assert out == {
        "done_is_bad": True,
        "pending_is_lazy": True,
        "error_type": "FunctionError",
        "error_function": "fails",
        "lazy": 2,
    }


def test_wait_first_failure_without_failures_waits_for_all() -> None:
    assert run(futures_app.first_failure_none_fail) == {"done": 2, "pending": 0}


def test_wait_and_result_timeouts() -> None:
    out = run(futures_app.wait_timeout)
    assert out == {
        "done": True,
        "pending": 0,
        "waited_short": True,
        "timed_out": {"builtin": True, "function_error": True, "function_name": "slow"},
        "exception": "TimeoutError",
        "result_raises_it": True,
    }


def test_failed_future_result_raises_function_error() -> None:
    assert run(futures_app.failed_result) == "fails: ValueError: fails(9)"


def test_map_item_failure_raises_function_error() -> None:
    assert run(futures_app.map_with_failure, [1, 2]).startswith("fails: ValueError: fails(")


def test_values_between_functions_are_copies() -> None:
    assert run(basic.values_are_copied) == {"d": {"a": 1}, "n": 2}


def test_tail_call() -> None:
    assert run(basic.tail, 21) == 42


def test_started_future_returned_fails_the_call() -> None:
    with pytest.raises(RequestFailed) as exc:
        run(basic.started_tail, 4)
    assert "is already running, a tail call Future should not be started" in exc.value.message


# -- @cls ------------------------------------------------------------------------------------


def test_cls_initialises_once() -> None:
    assert classes.INITS["Model"] == 0
    assert run(classes.predict_all, [1, 2, 3]) == [10, 20, 30]
    assert run(classes.predict_all, [4, 5]) == [40, 50]
    assert classes.INITS["Model"] == 1


# -- request state, progress, metrics -------------------------------------------------------


def test_state_shared_between_functions_of_a_request() -> None:
    out = run(state_app.share, "first")
    assert out == {
        "before": "absent",
        "child_saw": "first",
        "from_child": {"n": 2},
        "missing_default": 42,
        "missing": None,
    }


def test_state_isolated_between_requests() -> None:
    assert run(state_app.share, "one")["before"] == "absent"
    second = run(state_app.share, "two")
    assert second["before"] == "absent"
    assert second["child_saw"] == "two"


def test_progress_and_metrics_do_not_fail() -> None:
    assert run(state_app.report) == "ok"


def test_bad_state_key_fails_the_request() -> None:
    err = failure(state_app.bad_state_key)
    assert "state key must be a non-empty string" in err.message


def test_negative_progress_fails_the_request() -> None:
    err = failure(state_app.bad_progress)
    assert "needs to be a non-negative number" in err.message


def test_request_context_outside_a_request() -> None:
    with pytest.raises(SDKUsageError, match=r"RequestContext\.get\(\)"):
        cove.RequestContext.get()


# -- failures ------------------------------------------------------------------------------------


def test_child_failure_is_caught_and_handled() -> None:
    assert run(failures.handles_child_failure, 3) == {
        "function_name": "boom",
        "message": "ValueError: boom 3",
        "error_type": "ValueError",
    }


def test_uncaught_child_failure_fails_the_request_naming_the_child() -> None:
    err = failure(failures.uncaught_child_failure, 4)
    assert isinstance(err, RequestFailed)
    assert err.details["function_name"] == "boom"
    assert err.details["error_type"] == "ValueError"
    assert "boom 4" in err.message


def test_failing_application_names_itself() -> None:
    err = failure(failures.fails_itself)
    assert err.details["function_name"] == "fails_itself"
    assert err.details["error_type"] == "KeyError"
    assert err.code is cove.ErrorCode.FUNCTION_ERROR


def test_request_error_in_child_fails_request_without_retries() -> None:
    # A parent catching FunctionError does not catch a RequestError.
    err = failure(failures.request_error_in_child, "k1")
    assert err.code is cove.ErrorCode.REQUEST_ERROR
    assert err.message == "invalid input k1"
    assert err.details["function_name"] == "refuses"
    assert failures.ATTEMPTS["k1"] == 1  # max_retries=3 did not apply


def test_request_error_in_application_is_not_retried() -> None:
    err = failure(failures.request_error_in_app, "k2")
    assert err.code is cove.ErrorCode.REQUEST_ERROR
    assert err.message == "bad request"
    assert failures.ATTEMPTS["k2"] == 1


def test_request_error_fails_request_even_if_parent_swallows_it() -> None:
    err = failure(failures.request_error_swallowed, "k3")
    assert err.code is cove.ErrorCode.REQUEST_ERROR


@pytest.mark.parametrize("fails", [0, 1, 3])
def test_retries_until_success(fails: int) -> None:
    key = f"ok{fails}"
    assert run(failures.call_flaky_3, key, fails) == f"ok after {fails + 1}"
    assert failures.ATTEMPTS[key] == fails + 1


def test_too_few_retries_fail_the_request() -> None:
    err = failure(failures.call_flaky_1, "few", 3)
    assert failures.ATTEMPTS["few"] == 2  # the call and its one retry
    assert err.details["function_name"] == "flaky_1"
    assert err.details["error_type"] == "ConnectionError"
    assert "attempt 2 failed" in err.message


def test_no_retries_by_default() -> None:
    err = failure(failures.call_flaky_default, "none", 1)
    assert failures.ATTEMPTS["none"] == 1
    assert err.details["function_name"] == "flaky_default"


def test_functions_inherit_application_retries() -> None:
    assert run(failures.inherits_app_retries, "inh", 2) == "ok after 3"
    failures.reset()
    err = failure(failures.inherits_app_retries, "inh", 3)
    assert failures.ATTEMPTS["inh"] == 3
    assert err.details["function_name"] == "flaky_default"


# -- async ---------------------------------------------------------------------------------------


def test_async_functions_are_awaited() -> None:
    # 2*5 + (2 + 4) + (6 + 8)
    assert run(asyncs.async_app, 5) == 30


def test_sync_function_calling_async_function() -> None:
    assert run(asyncs.sync_app_calls_async, 5) == 16


# -- calls that outlive their request, and async functions that block -----------------------


def _wait_for_no_scope(limit: float = 3.0) -> None:
    deadline = time.monotonic() + limit
    while current_scope() is not None and time.monotonic() < deadline:
        time.sleep(0.02)


def test_finished_request_does_not_leak_its_scope() -> None:
    try:
        assert run(futures_app.leaves_straggler) == "done"
        with pytest.raises(SDKUsageError):
            cove.RequestContext.get()
    finally:
        _wait_for_no_scope()


def test_async_function_blocking_on_async_children_does_not_deadlock() -> None:
    apps_dir = Path(__file__).parent / "apps"
    code = (
        f"import sys; sys.path.insert(0, {str(apps_dir)!r}); import async_blocking as m; "
        "import cove; print(cove.run_local_application(m.async_blocking_map, [1, 2]).output())"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=4
        )
    except subprocess.TimeoutExpired:
        pytest.fail("deadlocked")
    assert proc.stdout.strip() == "[2, 4]", proc.stderr
