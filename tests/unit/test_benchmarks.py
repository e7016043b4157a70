"""The benchmark suite's own logic: targets, ratios, time boxes, skips, the README block."""

from __future__ import annotations

import http.server
import os
import shutil
import socketserver
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from benchmarks.readme import BEGIN, END, replace_section, section
from benchmarks.references import SCRIPTS, Job, plan, run_job, skip_reason
from benchmarks.report import TIMES as X
from benchmarks.report import (
    Cell,
    Target,
    comparison_table,
    detail_table,
    job_cell,
    markdown,
    ratio,
    verdict,
)
from benchmarks.suite import FULL_COUNTS, QUICK_COUNTS, wal_commit_cost
from benchmarks.throughput import ThroughputError, measure_throughput


# -- targets and ratios ---------------------------------------------------------------------
def test_verdict_met_and_missed_with_the_amount() -> None:
    assert verdict(Cell(1.5), Target(2.0), "ms") == "met"
    assert verdict(Cell(2.0), Target(2.0), "ms") == "met"
    assert verdict(Cell(3.0), Target(2.0), "ms") == "missed by 1.00 ms (x1.5)"
    assert verdict(Cell(0.9), Target(0.75), "s") == "missed by 0.150 s (x1.2)"


def test_verdict_higher_is_better() -> None:
    target = Target(1500.0, higher_is_better=True)
    assert verdict(Cell(1600.0), target, "req/s") == "met"
    assert verdict(Cell(1200.0), target, "req/s") == "missed by 300 req/s (x0.80)"


def test_verdict_needs_a_target_and_a_value_and_a_lower_bound_never_meets() -> None:
    assert verdict(Cell(1.0), None, "s") == ""
    assert verdict(Cell(), Target(1.0), "s") == ""
    assert verdict(Cell(0.5, lower_bound=True), Target(1.0), "s").startswith("missed")


def test_ratio_is_how_many_times_faster_cove_is() -> None:
    assert ratio(Cell(0.5), Cell(5.0)) == "10.0x faster"
    assert ratio(Cell(2.0), Cell(1.0)) == "0.5x (slower)"
    assert ratio(Cell(0.001), Cell(0.6)) == "600x faster"
    assert ratio(Cell(1.0), Cell(30.0, lower_bound=True)) == "> 30.0x faster"
    assert ratio(Cell(2000.0), Cell(500.0), higher_is_better=True) == "4.0x faster"
    assert ratio(Cell(), Cell(1.0)) == "-"
    assert ratio(Cell(1.0), Cell(note="skipped: too slow")) == "-"


def test_job_cell_reads_measured_time_boxed_and_skipped_jobs() -> None:
    ref = {
        "time_box_s": 30.0,
        "jobs": {
            "map-100": {"median_s": 2.0},
            "map-1000": {"median_s": None, "time_boxed": True, "lower_bound_s": 29.6},
            "map-10000": {"median_s": None, "skipped": "map of 1,000 already ran past it"},
        },
    }
    assert job_cell(ref, "map-100") == Cell(2.0)
    # A run stopped at its time box took at least the time box.
    assert job_cell(ref, "map-1000") == Cell(30.0, lower_bound=True, note="time-boxed")
    assert job_cell(ref, "map-10000").note == "skipped: map of 1,000 already ran past it"
    assert not job_cell(ref, "map-10000").known
    assert job_cell(ref, "noop") == Cell()


# -- the comparison table -------------------------------------------------------------------
def _results(quick: bool = False) -> dict[str, Any]:
    counts = (QUICK_COUNTS if quick else FULL_COUNTS).to_dict()
    cove = {
        "synchronous": "FULL",
        "label": "FULL (default)",
        "round_trip": {"p50_ms": 4.0, "server_cpu_ms_per_call": 0.4},
        "maps": {
            "100": {"median_s": 0.1},
            "1000": {"median_s": 0.4, "server_cpu_ms_per_call": 0.3},
            "10000": {"median_s": 6.0},
        },
        "sequential": {"median_s": 1.5, "server_cpu_ms_per_call": 0.2},
        "fanout": {"median_s": 0.6},
        "burst": {"p99_ms": 850.0},
        "cold_start": {"p50_ms": 12.0, "p99_ms": 30.0, "warm_p50_ms": 5.0},
        "throughput": {
            "requests_per_s": 1800.0, "clients_cpu_s": 0.9, "clients_cpu_ms_per_request": 0.1,
        },
        "memory": {"server_rss_mb": 90.0, "server_peak_rss_mb": 130.0, "container_rss_mb": 39.0},
        "wal_commit": {"full_ms": 1.0, "full_cpu_ms": 0.02, "normal_ms": 0.05},
    }  # fmt: skip
    tensorlake = {
        "time_box_s": 30.0,
        "jobs": {
            "noop": {"median_s": 0.6, "p50_ms": 600.0, "peak_rss_mb": 55.0},
            "map-100": {"median_s": 8.0},
            "map-1000": {"median_s": None, "time_boxed": True, "lower_bound_s": 30.0},
            "map-10000": {"skipped": "map of 1,000 already ran past the 30 s time box"},
            "sequential-1000": {"median_s": 20.0},
            "fanout-1000": {"median_s": None, "time_boxed": True, "lower_bound_s": 30.0},
        },
    }
    return {
        "quick": quick,
        "counts": counts,
        "machine": {},
        "levels": [cove],
        "references": {"tensorlake": tensorlake},
    }


def _with_dbos(results: dict[str, Any], p50_ms: float = 6.0) -> dict[str, Any]:
    results["references"]["dbos"] = {
        "time_box_s": 30.0,
        "jobs": {"noop": {"median_s": p50_ms / 1000, "p50_ms": p50_ms}},
    }
    return results


def _row(body: list[list[str]], start: str) -> list[str]:
    return next(r for r in body if r[0].startswith(start))


def test_comparison_table_columns_ratios_and_targets() -> None:
    header, body, notes = comparison_table(_results())
    assert header == [
        "Workload", "Target", "Cove", "tensorlake local runner", "Cove vs tensorlake",
        "Target met?",
    ]  # fmt: skip
    # Without DBOS in the run, the round trip has no target at all.
    assert _row(body, "No-arg") == [
        "No-arg application round trip, p50 (Cove: over HTTP)", "-", "4.00 ms",
        "600 ms", "150x faster", "-",
    ]  # fmt: skip
    assert _row(body, "Server CPU per no-arg request")[1:] == [
        "≤ 0.50 ms", "0.40 ms", "n/a", "-", "met",
    ]  # fmt: skip
    # The map of 1,000 has no target of its own any more; its server CPU per item has.
    assert _row(body, "Map over 1,000 ")[1:] == [
        "-", "0.400 s", "> 30.0 s (time-boxed)", "> 75.0x faster", "-",
    ]  # fmt: skip
    assert _row(body, "Server CPU per map item (map of 1,000)")[1:] == [
        "≤ 0.15 ms", "0.30 ms", "n/a", "-", "missed by 0.15 ms (x2.0)",
    ]  # fmt: skip
    assert _row(body, "Map over 10,000 ")[1:] == [
        "≤ 2.000 s", "6.000 s", "skipped", "-", "missed by 4.000 s (x3.0)",
    ]  # fmt: skip
    growth = _row(body, "Map growth")
    assert growth[1] == "-" and growth[2] == "15.0x" and growth[-1] == "-"
    # 1.2 x 1,000 commits of 1.00 ms each, measured in the same run.
    assert _row(body, "1,000 sequential")[1:] == [
        f"≤ 1.2 {X} 1,000 WAL commits = 1.200 s", "1.500 s", "20.0 s", "13.3x faster",
        "missed by 0.300 s (x1.2)",
    ]  # fmt: skip
    assert _row(body, "Server CPU per sequential child call")[1::4] == ["≤ 0.25 ms", "met"]
    assert _row(body, "Fan-out/fan-in of 1,000")[1:3] == ["≤ 0.300 s", "0.600 s"]
    assert _row(body, "Fan-out/fan-in of 1,000")[-1] == "missed by 0.300 s (x2.0)"
    assert _row(body, "Burst (warm 4, max 8, 200 requests), p99")[1:3] == ["≤ 1,000 ms", "850 ms"]
    assert _row(body, "Burst (warm 4, max 8, 200 requests), p99")[-1] == "met"
    assert _row(body, "Throughput")[1:] == [
        "≥ 2,000 req/s", "1,800 req/s", "n/a", "-", "missed by 200 req/s (x0.90)",
    ]  # fmt: skip
    assert _row(body, "Container cold start, p50")[1::4] == ["≤ 50.00 ms", "met"]
    assert _row(body, "Server RSS, idle after the runs")[1::4] == ["≤ 100.0 MB", "met"]
    assert _row(body, "Server RSS, idle after its first request")[1] == "-"
    assert _row(body, "Warm start")[1] == "-"
    assert _row(body, "One idle container")[1::4] == ["≤ 40.0 MB", "met"]
    # Skips are explained, and so is every missed target, and nothing else.
    assert notes[0] == (
        "tensorlake local runner skipped the map over 10,000 items of a trivial function: "
        "map of 1,000 already ran past the 30 s time box."
    )
    missed = [n.split(": missed because")[0] for n in notes if ": missed because" in n]
    assert missed == [
        "Map over 10,000 items of a trivial function", "Server CPU per map item (map of 1,000)",
        "1,000 sequential blocking child calls", "Fan-out/fan-in of 1,000 calls, then a reduce",
        "Throughput, no-arg app, 64 HTTP clients",
    ]  # fmt: skip
    assert "see docs/benchmarks.md, The hot path" in notes[1]


def test_round_trip_target_is_half_of_dbos_p50_in_the_same_run() -> None:
    _, body, notes = comparison_table(_with_dbos(_results(), p50_ms=6.0))
    row = _row(body, "No-arg")
    assert row[1] == f"≤ 0.5 {X} DBOS = 3.00 ms"
    assert row[2] == "4.00 ms" and row[4] == "6.00 ms"
    assert row[-1] == "missed by 1.00 ms (x1.3)"
    assert any(n.startswith("No-arg application round trip") for n in notes)
    _, body, notes = comparison_table(_with_dbos(_results(), p50_ms=9.0))
    assert _row(body, "No-arg")[1] == f"≤ 0.5 {X} DBOS = 4.50 ms"
    assert _row(body, "No-arg")[-1] == "met"
    assert not any(n.startswith("No-arg application round trip") for n in notes)


def test_computed_targets_need_what_they_are_computed_from() -> None:
    results = _with_dbos(_results())
    results["references"]["dbos"]["jobs"]["noop"] = {"error": "wrong output 1"}
    del results["levels"][0]["wal_commit"]
    _, body, notes = comparison_table(results)
    assert _row(body, "No-arg")[1] == "-" and _row(body, "No-arg")[-1] == "-"
    assert _row(body, "1,000 sequential")[1] == "-" and _row(body, "1,000 sequential")[-1] == "-"
    assert not any(n.startswith(("No-arg", "1,000 sequential")) for n in notes)
    # A time-boxed DBOS only bounds its p50 from below: no target either.
    results["references"]["dbos"]["jobs"]["noop"] = {
        "median_s": None, "time_boxed": True, "lower_bound_s": 30.0,
    }  # fmt: skip
    assert _row(comparison_table(results)[1], "No-arg")[1] == "-"


def test_targets_resolve_from_the_results() -> None:
    static = Target(0.5)
    assert static.resolve({}) is static
    computed = Target(lambda r: r.get("x"), basis="basis")
    assert computed.resolve({}) is None
    assert computed.resolve({"x": 2.0}) == Target(2.0, basis="basis")
    assert computed.resolve({"x": 2.0}).text("s") == "≤ basis = 2.000 s"  # type: ignore[union-attr]
    # An unresolved computed target judges nothing.
    assert verdict(Cell(5.0), computed, "s") == ""


def test_quick_runs_judge_no_target_that_needs_the_full_sizes() -> None:
    _, body, _ = comparison_table(_with_dbos(_results(quick=True)))
    names = [r[0] for r in body]
    assert "Map over 100 items of a trivial function" in names
    assert not any("1,000" in n for n in names)
    assert _row(body, "100 sequential")[1] == "-"
    assert _row(body, "Server CPU per sequential child call")[1] == "-"
    assert _row(body, "Fan-out/fan-in of 100")[1] == "-"
    assert _row(body, "Burst (warm 4, max 8, 40 requests), p99")[1] == "-"
    assert _row(body, "No-arg")[-1].endswith("(--quick)")
    assert _row(body, "Server CPU per no-arg request")[-1] == "met (--quick)"


def test_detail_table_has_the_wal_commits_and_the_clients_cpu() -> None:
    header, body = detail_table(_results())
    assert header == ["Cove figure", "FULL (default)"]
    assert _row(body, "One SQLite WAL commit, synchronous=FULL")[1] == "1.00 ms"
    assert _row(body, "One SQLite WAL commit, synchronous=NORMAL")[1] == "0.05 ms"
    assert [r[1] for r in body if r[0] == "  its CPU"] == ["0.02 ms", "-"]
    assert _row(body, "  load clients' CPU per request")[1] == "0.10 ms"
    assert _row(body, "  load clients' CPU in the measured window")[1] == "0.900 s"


def test_markdown_has_the_table_and_its_notes() -> None:
    text = markdown(_results(), details=False)
    assert text.startswith("| Workload | Target | Cove |")
    assert "| Map over 10,000 items of a trivial function | ≤ 2.000 s | 6.000 s |" in text
    assert "| Map over 1,000 items of a trivial function | - | 0.400 s |" in text
    assert "\n- tensorlake local runner skipped the map over 10,000 items" in text


def test_readme_block_is_replaced_and_the_prose_around_it_kept() -> None:
    results = _results()
    results["machine"] = {
        "date": "2026-01-01 00:00 UTC", "cores": 2, "cpu": "CPU", "memory_mb": 4096,
        "python": "CPython 3.11", "sqlite": "3.40", "data_filesystem": "ext4 (/dev/x on /)",
        "load_average_at_start": [0.1],
    }  # fmt: skip
    results["references"]["tensorlake"].update(version="0.5", venv="v", install_s=0)
    text = f"# Title\n\n## Benchmarks\n\nBefore.\n\n{BEGIN}\nOLD BLOCK\n{END}\n\nAfter.\n"
    new = replace_section(text, section(results, Path("docs/plot.png")))
    assert new.startswith("# Title\n\n## Benchmarks\n\nBefore.\n\n" + BEGIN + "\nMeasured 2026")
    assert new.endswith(f"![Latency of a map against its size](docs/plot.png)\n{END}\n\nAfter.\n")
    assert "OLD BLOCK" not in new
    with pytest.raises(ValueError):
        replace_section("no markers", "x")


def test_failed_workloads_and_systems_are_shown_and_explained() -> None:
    results = _results()
    results["references"]["tensorlake"]["jobs"]["noop"] = {"error": "wrong output 1"}
    results["references"]["dbos"] = {"error": "installing dbos==3.4.0 failed", "jobs": {}}
    header, body, notes = comparison_table(results)
    assert header[3:5] == ["tensorlake local runner", "DBOS (SQLite)"]
    assert _row(body, "No-arg")[3:5] == ["failed", "failed"]
    assert _row(body, "Map over 100 ")[3:5] == ["8.000 s", "failed"]
    assert "DBOS (SQLite) could not run: installing dbos==3.4.0 failed." in notes
    assert sum(n.startswith("DBOS (SQLite) could not run") for n in notes) == 1
    assert (
        "tensorlake local runner failed the no-arg application round trip, p50 (Cove: over "
        "HTTP): wrong output 1." in notes
    )


# -- reference runs: plans, skips, time boxes -----------------------------------------------
def test_plans_run_every_workload_with_fewer_repetitions_than_cove() -> None:
    jobs = plan("tensorlake", (100, 1000, 10000), 1000, quick=False)
    assert [j.key for j in jobs] == [
        "noop", "map-100", "map-1000", "map-10000", "sequential-1000", "fanout-1000",
    ]  # fmt: skip
    assert jobs[0].repeats <= 5 and all(j.repeats == 1 for j in jobs[2:])
    assert plan("dbos", (10,), 100, quick=True)[0].repeats == 20


def _done(n: int, median: float | None, boxed: bool = False) -> dict[str, Any]:
    return {"workload": "map", "n": n, "median_s": median, "time_boxed": boxed, "skipped": None}


def test_skip_reason_after_a_time_boxed_smaller_size() -> None:
    done = {"map-1000": _done(1000, None, boxed=True)}
    reason = skip_reason(Job("map", 10000, 1, 1), done, 30.0)
    assert reason == "map of 1,000 already ran past the 30 s time box"


def test_skip_reason_extrapolates_the_marginal_cost_per_item() -> None:
    done = {"map-100": _done(100, 1.0), "map-1000": _done(1000, 10.0)}  # 10 ms per item
    reason = skip_reason(Job("map", 10000, 1, 1), done, 30.0)
    assert reason is not None and reason.startswith("about 100 s or more (linear from 100")
    assert skip_reason(Job("map", 10000, 1, 1), done, 200.0) is None
    # One small size says nothing about the slope (its fixed costs dominate): run it.
    assert skip_reason(Job("map", 1000, 1, 1), {"map-10": _done(10, 1.0)}, 5.0) is None
    assert skip_reason(Job("sequential", 1000, 1, 1), done, 1.0) is None


FAKE_APP = """
import time
began = time.perf_counter()
from _protocol import main
main(began, {"noop": lambda n: 0, "map": lambda n: time.sleep(n / 1000) or n * (n + 1) // 2,
             "sequential": lambda n: 42})
"""


@pytest.fixture
def fake_scripts(tmp_path: Path) -> Path:
    shutil.copy(SCRIPTS / "_protocol.py", tmp_path / "_protocol.py")
    (tmp_path / "fake_app.py").write_text(FAKE_APP)
    return tmp_path


def test_run_job_collects_the_timed_runs(fake_scripts: Path) -> None:
    result = run_job(sys.executable, "fake", Job("map", 50, 3, 1), 30.0, fake_scripts)
    assert len(result["runs_s"]) == 3 and not result["time_boxed"]
    assert all(0.05 <= r < 5 for r in result["runs_s"])
    assert result["median_s"] == sorted(result["runs_s"])[1]
    assert result["peak_rss_mb"] > 0 and result["startup_s"] >= 0
    noop = run_job(sys.executable, "fake", Job("noop", 0, 5, 0), 30.0, fake_scripts)
    assert noop["p50_ms"] < 5


def test_run_job_stops_a_run_at_its_time_box(fake_scripts: Path) -> None:
    began = time.perf_counter()
    result = run_job(sys.executable, "fake", Job("map", 60_000, 1, 0), 1.0, fake_scripts)
    assert time.perf_counter() - began < 30  # stopped, not the 60 s the run needs
    assert result["time_boxed"] and result["runs_s"] == [] and result["median_s"] is None
    assert result["lower_bound_s"] >= 0.9


def test_run_job_fails_on_a_wrong_answer(fake_scripts: Path) -> None:
    from benchmarks.references import ReferenceSystemError

    with pytest.raises(ReferenceSystemError, match="wrong output 42"):
        run_job(sys.executable, "fake", Job("sequential", 10, 1, 0), 30.0, fake_scripts)


# -- the throughput client ------------------------------------------------------------------
class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body = b"0"

    def do_POST(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


@pytest.fixture
def http_server() -> Any:
    server = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_throughput_counts_answers_in_its_window(http_server: Any) -> None:
    port = http_server.server_address[1]
    result = measure_throughput("127.0.0.1", port, "/x", b"0", clients=4, warmup_s=0.2,
                                seconds=0.5)  # fmt: skip
    assert result["requests"] > 0 and result["errors"] == 0
    assert result["requests_per_s"] == pytest.approx(result["requests"] / 0.5, rel=0.01)
    assert result["requests_total"] >= result["requests"]
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    # The clients ran in a process of their own, whose CPU is reported.
    assert result["clients_pid"] != os.getpid()
    assert 0 < result["clients_cpu_s"] <= result["clients_cpu_total_s"]
    # clients_cpu_s is rounded to the ms: that half ms, spread over the requests, is the slack.
    rounding = 0.5 / result["requests"]
    assert result["clients_cpu_ms_per_request"] == pytest.approx(
        result["clients_cpu_s"] * 1000 / result["requests"], abs=rounding + 1e-3
    )
    with pytest.raises(ThroughputError, match="failed requests"):
        measure_throughput("127.0.0.1", port, "/x", b"1", clients=2, warmup_s=0, seconds=0.2)


# -- the SQLite commit baseline -------------------------------------------------------------
def test_wal_commit_cost_times_each_level_and_leaves_nothing_behind(tmp_path: Path) -> None:
    figures = wal_commit_cost(tmp_path, transactions=20)
    assert figures["transactions"] == 20
    for level in ("full", "normal"):
        assert figures[f"{level}_ms"] > 0 and figures[f"{level}_cpu_ms"] >= 0
        assert figures[f"{level}_ms"] == pytest.approx(
            figures[f"{level}_total_s"] * 1000 / 20,
            abs=0.03,  # total_s is to the ms
        )
    assert list(tmp_path.iterdir()) == []


def test_wal_commit_cost_commits_each_transaction_in_wal_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    connect = sqlite3.connect

    class Spy(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            seen.append(sql)
            return super().execute(sql, *args)

    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: connect(*a, factory=Spy, **k))
    wal_commit_cost(tmp_path, transactions=5)
    assert seen.count("PRAGMA journal_mode=WAL") == 2
    assert [q for q in seen if q.startswith("PRAGMA synchronous")] == [
        "PRAGMA synchronous=FULL",
        "PRAGMA synchronous=NORMAL",
    ]
    assert seen.count("COMMIT") == 10 and seen.count("BEGIN") == 10


def test_steps_keeps_each_revisions_best_round_and_tables_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks import steps

    seen: list[str | None] = []
    cpu = iter([2.0, 1.5, 1.8, 1.0])  # old, new, old, new: the old's second round is better

    def fake_measure(env: dict[str, str | None], _root: Path) -> dict[str, dict[str, float]]:
        seen.append(env["PYTHONPATH"])
        value = next(cpu)
        figure = {"cpu_ms": value, "loop_cpu_ms": value / 2, "wall_ms": value * 2}
        return {name: dict(figure) for name, *_ in steps.WORKLOADS}

    monkeypatch.setattr(steps, "measure", fake_measure)
    monkeypatch.setattr(steps, "_worktree", lambda rev, root: tmp_path / rev)
    assert steps.main(["old=/hide", "new", "--rounds", "2"]) == 0
    assert seen == [f"{tmp_path}/old/src:/hide", f"{tmp_path}/new/src"] * 2
    table = capsys.readouterr().out.splitlines()
    assert (
        table[2]
        == "| old | 1.80 ms | 0.90 ms | 3.60 ms | 1.800 ms | 3.600 s | 1.800 ms | 1.080 s |"
    )
    assert (
        table[3]
        == "| new | 1.00 ms | 0.50 ms | 2.00 ms | 1.000 ms | 2.000 s | 1.000 ms | 0.600 s |"
    )
