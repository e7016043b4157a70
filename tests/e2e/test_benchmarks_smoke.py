"""``python -m benchmarks --quick --systems cove``: the suite's one command, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_quick_run_of_cove_alone_writes_results_table_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--systems", "cove", "--json", str(out),
         "--markdown", "--data-root", str(tmp_path / "data")],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["quick"] and results["systems"] == ["cove"] and results["references"] == {}
    (level,) = results["levels"]
    assert level["round_trip"]["calls"] == 50 and level["round_trip"]["p50_ms"] > 0
    assert set(level["maps"]) == {"10", "100"}
    for figures in (*level["maps"].values(), level["sequential"], level["fanout"]):
        assert figures["median_s"] > 0
    assert level["cold_start"]["containers"] >= 1 and level["cold_start"]["warm_p50_ms"] > 0
    assert level["throughput"]["requests"] > 0 and level["throughput"]["errors"] == 0
    assert level["memory"]["server_rss_mb"] > 0 and level["memory"]["container_rss_mb"] > 0
    # Once idle for the container idle timeout, only the containers kept warm are left.
    left = {c["function"] for c in level["memory_idle"]["container_list"]}
    assert left <= {"bursty", "bench_warm"}, level["memory_idle"]
    assert level["memory_idle"]["containers"] < level["memory"]["containers"]
    # The table (Markdown too) and the plot.
    # Without DBOS in the run, the round trip has no target (it is half of DBOS's p50).
    assert "| No-arg application round trip, p50 (Cove: over HTTP) | - |" in done.stdout
    assert "| Server CPU per no-arg request | ≤ 0.50 ms |" in done.stdout
    assert "Map over 100 items of a trivial function" in done.stdout
    plot = tmp_path / "results-fanout.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
