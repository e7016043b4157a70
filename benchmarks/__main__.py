"""``python -m benchmarks [--quick] [--json PATH]``: run Cove's benchmarks against a real server."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.machine import machine_facts
from benchmarks.report import markdown, print_report
from benchmarks.suite import FULL_COUNTS, PHASES, QUICK_COUNTS, BenchmarkError, run_level

RESULTS = Path(__file__).parent / "results"
DEFAULT_JSON = RESULTS / "latest.json"
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
        description="Start a Cove server, deploy benchmarks/apps.py and measure it.",
    )
    parser.add_argument("--quick", action="store_true", help="a fast smoke run with small counts")
    parser.add_argument(
        "--json", type=Path, default=default_json, metavar="PATH",
        help=f"where to write the results (default: benchmarks/results/{default_json.name})",
    )  # fmt: skip
    parser.add_argument(
        "--sync", default="FULL,NORMAL", metavar="LEVELS",
        help="SQLite synchronous levels to measure, comma-separated, each on a fresh server "
        "(default: FULL,NORMAL; FULL is the server's default)",
    )  # fmt: skip
    parser.add_argument(
        "--only", default=",".join(PHASES), metavar="PHASES",
        help=f"benchmarks to run, comma-separated (default: {','.join(PHASES)})",
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
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    return parser.parse_args(argv)


def main(
    argv: list[str] | None = None,
    experiment: str | None = None,
    default_json: Path = DEFAULT_JSON,
) -> int:
    args = parse_args(argv, default_json)
    counts = QUICK_COUNTS if args.quick else FULL_COUNTS
    levels = [s.strip().upper() for s in args.sync.split(",") if s.strip()]
    unknown = [s for s in levels if s not in LEVELS]
    if unknown or not levels:
        print(f"--sync takes some of {', '.join(LEVELS)}", file=sys.stderr)
        return 2
    phases = tuple(p.strip() for p in args.only.split(",") if p.strip())
    if not set(phases) <= set(PHASES):
        print(f"--only takes some of {', '.join(PHASES)}", file=sys.stderr)
        return 2
    data_root = args.data_root or Path(tempfile.gettempdir())
    data_root.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "quick": args.quick,
        "experiment": experiment,
        "counts": counts.to_dict(),
        "machine": machine_facts(data_root),
        "levels": [],
    }

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    began = time.perf_counter()
    try:
        for level in levels:
            results["levels"].append(
                run_level(LEVELS[level], counts, data_root, args.profile, log, phases)
            )
    except (BenchmarkError, RuntimeError, httpx.HTTPError) as err:
        print(f"benchmark failed: {err}", file=sys.stderr)
        return 1
    results["total_s"] = round(time.perf_counter() - began, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print_report(results)
    if args.markdown:
        print(markdown(results))
    print(f"Took {results['total_s']} s; results in {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
