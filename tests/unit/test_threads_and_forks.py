"""A call's threads and forked children in ``run_local_application`` (issue 15): as in the
Tensorlake SDK 0.5.163's local runner (checked against it), within Cove's documented subset
for a forked child (docs/tensorlake.md); tests/integration/test_threads_and_forks.py runs the
same apps on a server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from cove import run_local_application
from tests.apps import forked_child as fc

FORKED_CHILD = {
    "state_get": ["SDKUsageError"],
    "state_set": ["SDKUsageError"],
    "headers": ["SDKUsageError"],
    "progress": ["SDKUsageError"],
    "counter": ["SDKUsageError"],
    "call": ["SDKUsageError"],
    "future": ["SDKUsageError"],
    "same_request_id": True,
    "same_call_id": True,
    "child_key_in_parent": None,
}

USER_THREAD = {
    "call": ["SDKUsageError"],
    "future": ["SDKUsageError"],
    "map": ["SDKUsageError"],
    "own_thread": ["ok", 4],
}


def test_request_context_in_a_forked_child() -> None:
    assert run_local_application(fc.forked_child_context, 1).output() == FORKED_CHILD


def test_function_calls_from_a_thread_the_call_started() -> None:
    assert run_local_application(fc.calls_from_a_user_thread, 2).output() == USER_THREAD


@pytest.fixture
def straggler_released() -> Iterator[None]:
    fc.release.clear()
    fc.straggling.clear()
    yield
    fc.release.set()


def in_thread(thunk: Any) -> Any:
    found: list[Any] = []
    thread = threading.Thread(target=lambda: found.append(fc.outcome(thunk)))
    thread.start()
    thread.join(60)
    return found


@pytest.mark.usefixtures("straggler_released")
def test_plain_calls_after_a_request_returned_with_a_call_still_running() -> None:
    # Outside any request functions are plain Python, also while a call that a finished
    # request started still runs in this process.
    assert run_local_application(fc.leaves_a_call_running, 5).output() == 5
    assert fc.straggling.wait(60), "the straggling call never started"
    assert not fc.release.is_set()
    assert fc.double(4) == 8
    assert fc.double.future(4).run().result() == 8
    assert in_thread(lambda: fc.double.future(4).run().result()) == [["ok", 8]]
