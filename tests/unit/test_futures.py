"""Durable call ids: derived from the parent's id and the call's position, never from timing.

The application call is ``"0"``; the n-th call a body issues is ``f"{parent}.{n}"``
(positions are taken when a Future is created); item ``i`` of a map or fold step ``i`` of
a reduce issued at position ``p`` is ``f"{parent}.{p}.{i}"``.
"""

from typing import Any

import pytest

from cove import run_local_application
from cove.sdk.context import CallScope, current_scope

from .apps import ids


def run(app: Any, *args: Any) -> Any:
    return run_local_application(app, *args).output()


@pytest.fixture(scope="module")
def observed() -> dict[str, Any]:
    return run(ids.ids)  # type: ignore[no-any-return]


def test_application_call_is_zero(observed: dict[str, Any]) -> None:
    assert observed["self"] == "0"


def test_direct_call_takes_the_first_position(observed: dict[str, Any]) -> None:
    assert observed["direct"] == "0.0"


def test_future_positions_follow_creation_not_start_order(observed: dict[str, Any]) -> None:
    assert observed["b_second"] == "0.1"
    assert observed["c_first"] == "0.2"


def test_map_items_by_index_not_completion_order(observed: dict[str, Any]) -> None:
    assert observed["map"] == [[0, "0.3.0"], [1, "0.3.1"], [2, "0.3.2"], [3, "0.3.3"]]


def test_reduce_steps_by_index(observed: dict[str, Any]) -> None:
    assert observed["reduce"] == ["10@0.4.0", "11@0.4.1", "12@0.4.2"]


def test_reduce_without_initial_counts_steps_not_items() -> None:
    assert run(ids.ids_reduce_no_initial) == ["start", "1@0.0.0", "2@0.0.1"]


def test_grandchildren_extend_the_childs_id(observed: dict[str, Any]) -> None:
    assert observed["nested"] == ["0.5", "0.5.0", "0.5.1"]


def test_unstarted_future_still_takes_its_position(observed: dict[str, Any]) -> None:
    assert observed["after_unused"] == "0.7"


def test_ids_are_the_same_in_every_request(observed: dict[str, Any]) -> None:
    assert run(ids.ids) == observed


def test_tail_call_runs_under_the_futures_id() -> None:
    assert run(ids.ids_tail) == "0.1"


def test_retried_call_reissues_the_same_child_ids() -> None:
    ids.RETRY_LOG.clear()
    assert run(ids.ids_retry) == ["0.1", "0.1.0", "0.1.1"]
    assert ids.RETRY_LOG == [["0.1", "0.1.0", "0.1.1"], ["0.1", "0.1.0", "0.1.1"]]


def test_async_functions_follow_the_same_scheme() -> None:
    assert run(ids.ids_async) == ["0", "0.0", "0.1"]


def test_call_scope_hands_out_positions_in_order() -> None:
    scope = CallScope("req", "0.3", "f", backend=None)  # type: ignore[arg-type]
    assert [scope.child_id() for _ in range(3)] == ["0.3.0", "0.3.1", "0.3.2"]
    assert scope.next_position() == 3


def test_no_scope_outside_requests() -> None:
    assert current_scope() is None


# -- Futures and async functions as the Tensorlake SDK defines them (issue 15 §2) ------------
# The same app runs on a server in tests/integration/test_futures_containers.py.

from cove import RequestFailed  # noqa: E402
from tests.apps import futures_parity as fp  # noqa: E402

DELAY = "Future delay must be a non-negative finite number."


def test_future_arguments_pass_their_values() -> None:
    assert run(fp.future_arguments, 5) == 13


def test_futures_as_collections_items_and_initial_values() -> None:
    assert run(fp.future_collections, 3) == {
        "map_of_map": [0, 10, 20],
        "map_sync": [0, 10, 20],
        "reduce": 103,
        "items": [10, 20],
        "kwargs": 6,
        "initial": 8,
    }


def test_future_argument_keeps_the_ids_of_creation_order() -> None:
    assert run(fp.future_ids, 0) == {"second": [[None, "0.0"], "0.1"], "third": [None, "0.2"]}


def test_futures_inside_values_and_functions_do_not_pickle() -> None:
    out = run(fp.not_picklable, 0)
    assert out["future_in_list"][0] == "SerializationError"
    assert "It cannot be stored inside an object" in out["future_in_list"][1]
    assert out["function"][0] == "SerializationError"
    assert "Attempt to pickle <cove.Function to_str>" in out["function"][1]


def test_async_functions_give_coroutines_and_awaitable_maps() -> None:
    assert run(fp.async_calls, 4) == {
        "map": [2, 4],
        "reduce": 7,
        "is_coroutine": True,
        "task": 8,
        "gather": [2, 4],
        "same_coroutine": True,
        "coroutine": 10,
        "coroutine_arg": 7,
        "awaited_map_of_map": [10, 20],
    }
    # A returned coroutine stands for its Future: the map's list is the output.
    assert run(fp.returns_async_map, 3) == [6, 8]


def test_usage_errors() -> None:
    out = run(fp.usage_errors, 0)
    assert out["second_run"][0] == "SDKUsageError"
    assert out["second_run"][1].startswith("Attempt to run Future that is already started: ")
    assert out["return_when"] == ["SDKUsageError", "Not supported return_when value: 'wrong'"]
    assert out["negative_timeout"] == [
        "SDKUsageError",
        "Future.wait timeout must be a non-negative finite number.",
    ]
    assert out["not_a_future"] == ["SDKUsageError", "Cannot run a non-Future object 3."]
    for case in ("negative_delay", "infinite_delay", "bool_delay"):
        assert out[case] == ["SDKUsageError", DELAY]
    assert out["coroutine_in_sync_code"][0] == "SDKUsageError"
    assert out["later_not_started"] == ["False"]


def test_run_later_starts_after_the_delay() -> None:
    assert run(fp.run_later, 0.3) == {"value": 3, "waited": True}


def test_a_timed_out_wait_settles_the_future_with_a_timeout_error() -> None:
    assert run(fp.timeouts, 0) == {
        "result": ["TimeoutError", "Timed out."],
        "done": True,
        "exception": "TimeoutError",
        "again": ["TimeoutError", "Timed out."],
        "wait": [2, 0, "TimeoutError"],
    }


def test_returning_a_started_future_fails_the_call() -> None:
    with pytest.raises(RequestFailed) as exc:
        run(fp.tail_of_started, 1)
    assert exc.value.details["error_type"] == "SDKUsageError"
    assert "is already running, a tail call Future should not be started" in exc.value.message


def test_tail_call_with_a_future_argument() -> None:
    assert run(fp.tail_with_future_argument, 1) == 5
