"""The Gantt layout of a timeline: one row per attempt, positions as percentages."""

from __future__ import annotations

from typing import Any

from cove.server.ui.gantt import layout


def _attempt(n: int, status: str, start: float, end: float | None) -> dict[str, Any]:
    return {"attempt": n, "container": f"c{n}", "status": status, "start": start, "end": end}


def test_rows_per_attempt_with_retries_waits_and_depth() -> None:
    timeline = {
        "duration": 2.0,
        "calls": [
            {"id": "0.0", "parent_id": "0", "function": "child", "queued": 0.5,
             "attempt_history": [_attempt(1, "failed", 0.5, 1.0),
                                 _attempt(2, "succeeded", 1.5, 1.8)]},
            {"id": "0", "parent_id": None, "function": "root", "queued": 0.0,
             "attempt_history": [_attempt(1, "succeeded", 0.2, 2.0)]},
        ],
    }  # fmt: skip
    chart = layout(timeline, now=5.0)
    assert chart.span == 2.0 and chart.attempts == 3
    root, first, retry = chart.rows
    assert (root.function, root.depth, root.left, root.width) == ("root", 0, 10.0, 90.0)
    assert (root.wait_left, root.wait_width) == (0.0, 10.0)
    assert (first.depth, first.status, first.retry, first.left, first.width) == (
        1, "failed", False, 25.0, 25.0
    )  # fmt: skip
    # The retry waited from the failed attempt's end to its own start.
    assert retry.retry and (retry.wait_left, retry.wait_width) == (50.0, 25.0)
    assert [t for _, t in chart.ticks][:3] == [0.0, 0.5, 1.0]


def test_running_attempts_end_now_and_queued_calls_have_no_bar() -> None:
    timeline = {
        "duration": None,
        "calls": [
            {"id": "0", "parent_id": None, "function": "root", "queued": 0.0,
             "attempt_history": [_attempt(1, "running", 1.0, None)]},
            {"id": "0.0", "parent_id": "0", "function": "child", "queued": 2.0,
             "attempt_history": []},
        ],
    }  # fmt: skip
    chart = layout(timeline, now=4.0)
    assert chart.span == 4.0 and chart.attempts == 1
    running, queued = chart.rows
    assert running.end == 4.0 and (running.left, running.width) == (25.0, 75.0)
    assert queued.attempt is None and queued.width == 0.0
    assert (queued.wait_left, queued.wait_width) == (50.0, 50.0)
