"""``python -m benchmarks.steps REV [REV ...]``: the per-call costs of several revisions of
Cove, measured side by side.

Each revision is checked out into a git worktree (under a temporary folder) and served from
there (``PYTHONPATH``), with this checkout's benchmark code and applications. A round
measures every revision once, in the order given, each on a fresh ``cove server`` at
``synchronous=FULL``; rounds interleave (``--rounds``), so a machine that gets busier or
quieter during the run favours none of them. A measurement, after 100 warm-up requests:

- 1,000 sequential no-argument requests, three times;
- a map of 1,000 items, three times (after one that starts the containers);
- 300 sequential child calls, three times.

Each figure keeps the least of its three: server CPU (user + system, all the server's
threads, from ``/proc``) per request or per call, the event loop thread's share of it, and
the wall time. The table keeps each revision's best round.

``REV=PATH`` also puts PATH on that revision's ``PYTHONPATH``: for example a folder whose
``httptools/__init__.py`` raises ImportError, to measure a revision from before Cove chose
its HTTP parser with uvicorn's own parser (h11), as that revision ran then.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks.server import ServerProcess, cpu_seconds
from benchmarks.suite import _call

REPO = Path(__file__).resolve().parent.parent
#: (name, application, argument, calls per run) of each workload.
WORKLOADS = (
    ("round_trip", "bench_noop", None, 1000),
    ("map_1000", "bench_map", 1000, 1000),
    ("sequential_300", "bench_sequential", 300, 300),
)


def measure(env: dict[str, str | None], data_root: Path) -> dict[str, dict[str, float]]:
    """Per-call figures of one server started with ``env``."""
    server = ServerProcess(Path(tempfile.mkdtemp(dir=data_root)) / "data", None, env)
    server.start()
    try:
        server.deploy()
        with httpx.Client(base_url=server.url, timeout=300) as http:
            for _ in range(100):
                _call(http, "bench_noop")
            figures = {}
            for name, app, argument, calls in WORKLOADS:
                requests = calls if argument is None else 1
                if argument is not None:
                    _call(http, app, argument, 280)  # starts its containers
                figures[name] = _least_of_three(
                    server.pid, calls, lambda a=app, g=argument, n=requests: _repeat(http, a, g, n)
                )
            return figures
    finally:
        server.stop()


def _repeat(http: httpx.Client, app: str, argument: Any, times: int) -> None:
    for _ in range(times):
        _call(http, app, argument, 280)  # raises on anything but its 200


def _least_of_three(pid: int, calls: int, run: Callable[[], None]) -> dict[str, float]:
    samples = []
    for _ in range(3):
        cpu, loop, wall = cpu_seconds(pid) or 0.0, cpu_seconds(pid, pid) or 0.0, time.perf_counter()
        run()
        samples.append(
            (
                ((cpu_seconds(pid) or 0.0) - cpu) * 1000 / calls,
                ((cpu_seconds(pid, pid) or 0.0) - loop) * 1000 / calls,
                (time.perf_counter() - wall) * 1000 / calls,
            )
        )
    best = min(samples)
    return {
        "cpu_ms": round(best[0], 3),
        "loop_cpu_ms": round(best[1], 3),
        "wall_ms": round(best[2], 3),
    }


def _worktree(rev: str, root: Path) -> Path:
    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", rev + "^{commit}"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    path = root / sha[:12]
    if not path.exists():
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), sha],
            check=True, capture_output=True,
        )  # fmt: skip
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.steps", description=__doc__)
    parser.add_argument("revisions", nargs="+", metavar="REV[=PATH]")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="cove-steps-"))
    states = []
    try:
        for spec in args.revisions:
            rev, _, extra = spec.partition("=")
            tree = _worktree(rev, root)
            path = os.pathsep.join([str(tree / "src"), *([extra] if extra else [])])
            states.append((rev, {"PYTHONPATH": path}))
        rounds: dict[str, list[dict[str, dict[str, float]]]] = {rev: [] for rev, _ in states}
        for number in range(args.rounds):
            for rev, env in states:
                figures = measure(env, root)
                rounds[rev].append(figures)
                print(f"round {number + 1}, {rev}: {json.dumps(figures)}", file=sys.stderr)
    finally:  # the worktrees go with the run
        for tree in root.iterdir():
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                check=False, capture_output=True,
            )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
    best = {
        rev: {
            name: min((r[name] for r in results), key=lambda f: f["cpu_ms"])
            for name, *_ in WORKLOADS
        }
        for rev, results in rounds.items()
    }
    if args.json is not None:
        args.json.write_text(json.dumps({"rounds": rounds, "best": best}, indent=1) + "\n")
    print("| Revision | CPU per request | of it, the loop | round trip | CPU per map item "
          "| map of 1,000 | CPU per sequential child | 300 sequential |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for rev, f in best.items():
        rt, m, s = f["round_trip"], f["map_1000"], f["sequential_300"]
        print(
            f"| {rev} | {rt['cpu_ms']:.2f} ms | {rt['loop_cpu_ms']:.2f} ms "
            f"| {rt['wall_ms']:.2f} ms | {m['cpu_ms']:.3f} ms | {m['wall_ms']:.3f} s "
            f"| {s['cpu_ms']:.3f} ms | {s['wall_ms'] * 300 / 1000:.3f} s |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
