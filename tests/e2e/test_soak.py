"""The soak (``python -m benchmarks.soak``), short: a steady mixed load on a real ``cove
server`` with a short retention, sampled every 5 s, and the soak's own checks: memory flat
within 10 % after the warm-up, no growth of descriptors, threads or containers, the database
bounded by retention, every answer as expected. About 2 minutes on SQLite and 1 on
PostgreSQL (where its binaries are installed); the published run is longer (docs/benchmarks.md,
Soak)."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.soak import Config, report, run

from tests.postgres import missing

pytestmark = pytest.mark.slow


def soak(config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = run(config, tmp_path, log=lambda _line: None)
    with capsys.disabled():
        print("\n" + report(results))
    load = results["load"]
    assert load["sent"] >= config.rate * config.minutes * 60 * 0.5, load
    assert {k for k, v in load["by_kind"].items() if v["ok"]} == {
        "noop", "map", "file", "retry", "fail",
    }, load  # fmt: skip
    failed = [f"{c['name']}: {c['detail']}" for c in results["verdict"]["checks"]
              if not c["passed"]]  # fmt: skip
    assert not failed, "\n".join(failed)


def test_two_minute_soak_on_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = Config(minutes=2, sample_seconds=5, retention_seconds=15, cleanup_seconds=5)
    soak(config, tmp_path, capsys)


def test_one_minute_soak_on_postgresql(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    why = missing()
    if why is not None:
        pytest.skip(why)
    # Its own throw-away PostgreSQL, whose autovacuum wakes every cleanup interval.
    config = Config(
        minutes=1, database="postgresql", sample_seconds=5, retention_seconds=10,
        cleanup_seconds=3,
    )  # fmt: skip
    soak(config, tmp_path, capsys)
