"""``python -m benchmarks``: Cove and, in the same run, the reference systems, side by side."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.files import run_files_phase
from benchmarks.machine import machine_facts
from benchmarks.plot import plot
from benchmarks.readme import update_readme
from benchmarks.references import PACKAGES, SYSTEMS, plan, run_reference
from benchmarks.report import markdown, print_report
from benchmarks.suite import FULL_COUNTS, PHASES, QUICK_COUNTS, run_level

RESULTS = Path(__file__).parent / "results"
DEFAULT_JSON = RESULTS / "latest.json"
REPO = Path(__file__).resolve().parent.parent
PUBLISHED_PLOT = REPO / "docs" / "benchmarks-fanout.png"
#: The levels a run can measure; None leaves the server's default (FULL) alone.
LEVELS: dict[str, str | None] = {
    "FULL": None,
    "NORMAL": "NORMAL",
    "OFF": "OFF",
    "EXTRA": "EXTRA",
}


def parse_args(
    argv: list[str] | None = None, default_json: Path = DEFAULT_JSON
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Start a Cove server, deploy benchmarks/apps.py and measure it; run the same "
        "workloads on the tensorlake local runner and on DBOS; compare.",
    )
    parser.add_argument("--quick", action="store_true", help="a fast smoke run with small counts")
    parser.add_argument(
        "--systems", default=",".join(SYSTEMS), metavar="SYSTEMS",
        help=f"systems to run, comma-separated (default: {','.join(SYSTEMS)}); each reference "
        "is installed into benchmarks/.venvs/ the first time",
    )  # fmt: skip
    parser.add_argument(
        "--time-box", type=float, default=None, metavar="SECONDS",
        help="how long a reference workload may run before it is stopped and reported as a "
        "lower bound (default: 30, 10 with --quick)",
    )  # fmt: skip
    parser.add_argument(
        "--json", type=Path, default=default_json, metavar="PATH",
        help=f"where to write the results (default: benchmarks/results/{default_json.name}); "
        "the plot goes beside it",
    )  # fmt: skip
    parser.add_argument(
        "--sync", default="FULL", metavar="LEVELS",
        help="SQLite synchronous levels to measure Cove at, comma-separated, each on a fresh "
        "server (default: FULL, the server's default; e.g. FULL,NORMAL)",
    )  # fmt: skip
    parser.add_argument(
        "--only", default=",".join(PHASES), metavar="PHASES",
        help=f"Cove benchmarks to run, comma-separated (default: {','.join(PHASES)})",
    )  # fmt: skip
    parser.add_argument(
        "--data-root", type=Path, default=None, metavar="DIR",
        help="where the servers' throw-away data folders go (default: the system temp "
        "folder); what fsync costs depends on this file system",
    )  # fmt: skip
    parser.add_argument(
        "--profile", type=Path, default=None, metavar="DIR",
        help="record py-spy profiles of the server and its containers during each measured "
        "phase into DIR (raw collapsed stacks; read them with python -m benchmarks.profile_report)",
    )  # fmt: skip
    parser.add_argument(
        "--files", type=int, default=None, metavar="MIB",
        help="size of the file uploaded and downloaded on each blob backend, local and S3 "
        "(moto), in MiB (default: 1024, 16 with --quick; 0 skips)",
    )  # fmt: skip
    parser.add_argument("--markdown", action="store_true", help="also print the Markdown tables")
    parser.add_argument(
        "--publish", action="store_true",
        help="write the plot to docs/benchmarks-fanout.png and the table into README.md's "
        "Benchmarks section (between its benchmarks:begin/end markers)",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(
    argv: list[str] | None = None,
    experiment: str | None = None,
    default_json: Path = DEFAULT_JSON,
) -> int:
    args = parse_args(argv, default_json)
    counts = QUICK_COUNTS if args.quick else FULL_COUNTS
    time_box = args.time_box or (10.0 if args.quick else 30.0)
    levels = [s.strip().upper() for s in args.sync.split(",") if s.strip()]
    unknown = [s for s in levels if s not in LEVELS]
    if unknown or not levels:
        print(f"--sync takes some of {', '.join(LEVELS)}", file=sys.stderr)
        return 2
    phases = tuple(p.strip() for p in args.only.split(",") if p.strip())
    if not set(phases) <= set(PHASES):
        print(f"--only takes some of {', '.join(PHASES)}", file=sys.stderr)
        return 2
    systems = [s.strip().lower() for s in args.systems.split(",") if s.strip()]
    if not systems or not set(systems) <= set(SYSTEMS):
        print(f"--systems takes some of {', '.join(SYSTEMS)}", file=sys.stderr)
        return 2
    data_root = args.data_root or Path(tempfile.gettempdir())
    data_root.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "quick": args.quick,
        "experiment": experiment,
        "systems": systems,
        "counts": counts.to_dict(),
        "machine": machine_facts(data_root),
        "levels": [],
        "references": {},
    }

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    began = time.perf_counter()
    try:
        if "cove" in systems:
            for level in levels:
                results["levels"].append(
                    run_level(LEVELS[level], counts, data_root, args.profile, log, phases)
                )
        for system in (s for s in PACKAGES if s in systems):
            jobs = plan(system, counts.map_sizes, counts.fanout_items, args.quick)
            results["references"][system] = run_reference(system, jobs, time_box, log)
        mib = args.files if args.files is not None else (16 if args.quick else 1024)
        if "cove" in systems and mib > 0:
            log(f"files: a {mib} MiB upload and download on each blob backend (local, S3 on moto)")
            results.update(run_files_phase(data_root, mib * 1024 * 1024))
    except (RuntimeError, OSError, httpx.HTTPError) as err:
        print(f"benchmark failed: {err}", file=sys.stderr)
        return 1
    results["total_s"] = round(time.perf_counter() - began, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    picture = plot(results, args.json.with_name(args.json.stem + "-fanout.png"))
    print_report(results)
    if args.markdown:
        print(markdown(results))
    if picture is None:
        log("no plot: matplotlib is not installed (pip install -e '.[dev]')")
    if args.publish:
        if args.quick:
            log("--publish ignores --quick runs: the README holds full runs only")
        else:
            plot(results, PUBLISHED_PLOT)
            update_readme(REPO / "README.md", results, PUBLISHED_PLOT.relative_to(REPO))
            log(f"README.md's Benchmarks section and {PUBLISHED_PLOT} updated")
    where = f"results in {args.json}" + (f", plot in {picture}" if picture else "")
    log(f"Took {results['total_s']} s; {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
