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


def run(app: Any) -> Any:
    return run_local_application(app).output()


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
