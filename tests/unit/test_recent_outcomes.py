"""The outcomes a server keeps in memory hold a bounded number of output bytes: the oldest
outputs go first, their outcomes stay (the lease fence asks which requests finished here),
and an output bigger than the whole budget is never held."""

from __future__ import annotations

from cove.blobs import BlobRef
from cove.engine.model import Outcome, RecentOutcomes


def _done(size: int, app: str = "a") -> Outcome:
    return Outcome(app, "succeeded", "application/json", b"x" * size, None)


def test_the_oldest_outputs_are_let_go_first_and_their_outcomes_stay() -> None:
    recent = RecentOutcomes(limit=10, output_bytes=100)
    for n in range(4):
        recent.add(f"r{n}", _done(40))
    assert [recent.get(f"r{n}").output is None for n in range(4)] == [True, True, False, False]  # type: ignore[union-attr]
    assert all(f"r{n}" in recent for n in range(4))
    assert recent.held_bytes == 80


def test_an_output_bigger_than_the_budget_is_not_held() -> None:
    recent = RecentOutcomes(limit=10, output_bytes=100)
    recent.add("small", _done(10))
    recent.add("big", _done(101))
    big = recent.get("big")
    assert big is not None and big.output is None and big.status == "succeeded"
    assert recent.get("small").output == b"x" * 10  # type: ignore[union-attr]
    assert recent.held_bytes == 10


def test_a_reader_keeps_the_output_it_already_has() -> None:
    recent = RecentOutcomes(limit=10, output_bytes=50)
    recent.add("first", _done(40))
    read = recent.get("first")
    recent.add("second", _done(40))
    assert read is not None and read.output == b"x" * 40
    assert recent.get("first").output is None  # type: ignore[union-attr]


def test_the_count_limit_and_discards_keep_the_byte_count() -> None:
    recent = RecentOutcomes(limit=2, output_bytes=1000)
    for n in range(3):
        recent.add(f"r{n}", _done(100))
    assert "r0" not in recent and len(recent) == 2 and recent.held_bytes == 200
    recent.add("r1", _done(300))  # added again: counted once
    assert recent.held_bytes == 400
    recent.discard("r2")
    recent.discard("never")
    assert recent.held_bytes == 300 and len(recent) == 1
    recent.add("other", _done(5, app="b"))
    recent.discard_app("a")
    assert "r1" not in recent and "other" in recent and recent.held_bytes == 5
    recent.clear()
    assert len(recent) == 0 and recent.held_bytes == 0


def test_failures_and_file_outputs_cost_no_bytes() -> None:
    recent = RecentOutcomes(limit=10, output_bytes=10)
    recent.add("failed", Outcome("a", "failed", None, None, {"message": "no"}))
    recent.add("file", Outcome("a", "succeeded", "text/plain", BlobRef("k" * 64, 10**9), None))
    assert recent.held_bytes == 0
    assert isinstance(recent.get("file").output, BlobRef)  # type: ignore[union-attr]
