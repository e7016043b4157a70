"""The soak's verdict (benchmarks/soak.py): what passes, and that each kind of leak fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.soak import BEGIN, END, Config, publish, rows_limit, verdict, warmup_seconds

LOAD = {"sent": 1000, "errors": 0, "by_kind": {"noop": {"sent": 1000}}, "first_errors": []}


def steady(n: int = 30, **grow: float) -> list[dict[str, Any]]:
    """``n`` samples 10 s apart, flat unless ``grow`` adds an amount per sample to a key."""
    base = {"rss_kb": 100_000, "fds": 26, "threads": 7, "containers": 8,
            "container_processes": 9, "db_bytes": 8 * 2**20, "requests_rows": 500}  # fmt: skip
    return [
        {"t_s": 10.0 * i, **{k: v + grow.get(k, 0) * i for k, v in base.items()}} for i in range(n)
    ]


def failed(result: dict[str, Any]) -> list[str]:
    return [c["name"] for c in result["checks"] if not c["passed"]]


def test_a_steady_run_passes_every_check() -> None:
    result = verdict(steady(), LOAD, warmup_s=60, max_rows=700)
    assert result["passed"], result
    assert len(result["checks"]) == 8


def test_each_leak_fails_its_own_check() -> None:
    assert failed(verdict(steady(rss_kb=500), LOAD, 60, 700)) == ["memory flat"]
    assert failed(verdict(steady(fds=1), LOAD, 60, 700)) == ["no descriptors growth"]
    assert failed(verdict(steady(threads=0.5), LOAD, 60, 700)) == ["no threads growth"]
    leaked = verdict(steady(containers=0.2, container_processes=0.2), LOAD, 60, 700)
    assert failed(leaked) == ["no containers growth", "no container processes growth"]
    assert failed(verdict(steady(db_bytes=2**20), LOAD, 60, 700)) == ["database bounded"]
    assert failed(verdict(steady(requests_rows=10), LOAD, 60, 700)) == ["retention bounds the rows"]


def test_growth_during_the_warm_up_is_not_held_against_the_run() -> None:
    samples = steady()
    for s in samples[:6]:  # the first minute: memory and the database fill up
        s["rss_kb"] -= 30_000
        s["db_bytes"] //= 4
    assert verdict(samples, LOAD, warmup_s=60, max_rows=700)["passed"]
    assert not verdict(samples, LOAD, warmup_s=0, max_rows=700)["passed"]


def test_errors_a_dead_server_and_too_few_samples_fail() -> None:
    bad = {**LOAD, "errors": 1, "first_errors": ["noop: HTTP 500"]}
    assert failed(verdict(steady(), bad, 60, 700)) == ["every answer as expected"]
    assert failed(verdict(steady(), LOAD, 60, 700, server_alive=False)) == [
        "every answer as expected"
    ]
    assert failed(verdict(steady(8), LOAD, 60, 700)) == ["samples"]


def test_warm_up_and_rows_limit_follow_the_configuration() -> None:
    long = Config(minutes=60, retention_seconds=60, cleanup_seconds=10)
    assert warmup_seconds(long) == 720  # 20 % of the run
    short = Config(minutes=2, retention_seconds=15, cleanup_seconds=5)
    assert warmup_seconds(short) == 25  # retention and two cleanups
    assert warmup_seconds(Config(minutes=1, retention_seconds=60)) == 30  # half the run at most
    assert rows_limit(short) == 8 * 25 * 1.1 + 8


def test_publish_replaces_only_the_soak_block(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\n## Soak\n\nprose\n\n{BEGIN}\nold\n{END}\n\nafter\n")
    results = {
        "config": Config(minutes=1).to_dict(),
        "machine": {"date": "2025-01-01 00:00 UTC", "cores": 2, "cpu": "cpu", "python": "3.11"},
        "duration_s": 60.0,
        "load": {
            "sent": 480,
            "by_kind": {"noop": {"sent": 480, "errors": 0, "p50_ms": 5.0, "max_ms": 9.0}},
        },
        "samples": [{"t_s": 30.0, "rss_kb": 1024, "load_average": [1.0]}],
        "verdict": {
            "passed": True,
            "warmup_s": 12,
            "checks": [{"name": "memory flat", "passed": True, "detail": "flat"}],
        },
    }
    publish(results, Path("soak.png"), doc)
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\n## Soak\n\nprose\n\n") and text.endswith("\nafter\n")
    assert "old" not in text and "**1.0 minutes**" in text and "| memory flat | ✅ flat |" in text
    assert "![Soak: memory, descriptors, containers, database](soak.png)" in text


def test_a_saved_run_is_judged_and_plotted_again(tmp_path: Path) -> None:
    import json

    from benchmarks.soak import main

    saved = tmp_path / "soak.json"
    results = {
        "config": Config(minutes=5, retention_seconds=60, cleanup_seconds=10).to_dict(),
        "machine": {"date": "2025-01-01 00:00 UTC", "cores": 2, "cpu": "cpu", "python": "3.11"},
        "duration_s": 300.0,
        "load": LOAD,
        "samples": steady(),
        "verdict": {"passed": False, "warmup_s": 0, "checks": []},
    }
    saved.write_text(json.dumps(results))
    assert main(["--from-json", str(saved)]) == 0
    assert (tmp_path / "soak.png").read_bytes()[:4] == b"\x89PNG"
