"""A request's timeline laid out as a Gantt chart: one row and one bar per call attempt.

Positions are percentages of the request's span (from its creation to its end, or to now
while it runs), so the chart is plain HTML boxes that need no script to draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass
class Row:
    """One attempt of one call (or a call still waiting for its first attempt)."""

    call_id: str
    function: str
    attempt: int | None  # None: queued, no attempt started yet
    status: str
    container: str | None
    depth: int  # how deep the call sits in the call tree (the entry call is 0)
    start: float | None  # seconds since the request was created
    end: float | None
    queued: float | None = None  # when it was queued (seconds), the bar's waiting part
    retry: bool = False
    error: str | None = None
    left: float = 0.0  # percentages of the chart's width
    width: float = 0.0
    wait_left: float = 0.0
    wait_width: float = 0.0


@dataclass
class Chart:
    rows: list[Row]
    span: float  # seconds the chart covers
    ticks: list[tuple[float, float]]  # (percent, seconds) of the axis' marks

    @property
    def attempts(self) -> int:
        return sum(1 for r in self.rows if r.attempt is not None)


def _call_order(call: dict[str, Any]) -> tuple[float, list[int]]:
    tries = call["attempt_history"]
    first = tries[0]["start"] if tries else call.get("queued") or 0.0
    path = [int(p) for p in call["id"].split(".") if p.isdigit()]
    return (first if first is not None else 0.0, path)


def _rows(timeline: dict[str, Any], now: float) -> list[Row]:
    rows: list[Row] = []
    parents = {c["id"]: c["parent_id"] for c in timeline["calls"]}
    for call in sorted(timeline["calls"], key=_call_order):
        depth, parent = 0, call["parent_id"]
        while parent is not None and depth < 50:
            depth, parent = depth + 1, parents.get(parent)
        queued = call.get("queued")
        tries = call["attempt_history"]
        if not tries:
            row = Row(call["id"], call["function"], None, "queued", None, depth, None, None, queued)
            rows.append(row)
            continue
        for i, a in enumerate(tries):
            running = a["end"] is None and a["status"] == "running"
            end = now if running else (a["end"] if a["end"] is not None else a["start"])
            error = a.get("error") or None
            rows.append(
                Row(
                    call_id=call["id"],
                    function=call["function"],
                    attempt=a["attempt"],
                    status=a["status"],
                    container=a["container"],
                    depth=depth,
                    start=a["start"],
                    end=end,
                    queued=queued if i == 0 else tries[i - 1]["end"],
                    retry=i > 0,
                    error=(error.get("message") if isinstance(error, dict) else None),
                )
            )
    return rows


def _ticks(span: float) -> list[tuple[float, float]]:
    step = 10.0 ** math.floor(math.log10(span))  # the power of ten at or below the span
    while span / step > 8:
        step *= 2
    while span / step < 3:
        step /= 2
    marks, t = [], 0.0
    while t <= span + 1e-9:
        marks.append((round(100 * t / span, 3), round(t, 6)))
        t += step
    return marks


def layout(timeline: dict[str, Any], now: float) -> Chart:
    """The chart of ``timeline`` (as ``GET .../timeline`` answers it); ``now``: seconds
    since the request was created, where running attempts end for now."""
    rows = _rows(timeline, now)
    ends = [r.end for r in rows if r.end is not None] + [timeline.get("duration") or 0.0]
    span = max([*ends, 0.001] if timeline.get("duration") else [*ends, now, 0.001])
    for r in rows:
        start = r.start if r.start is not None else now
        if r.start is not None and r.end is not None:
            r.left = round(100 * r.start / span, 3)
            r.width = round(max(100 * (r.end - r.start) / span, 0.3), 3)
        if r.queued is not None and start > r.queued:
            r.wait_left = round(100 * r.queued / span, 3)
            r.wait_width = round(100 * (start - r.queued) / span, 3)
    return Chart(rows, span, _ticks(span))
