"""The reference systems: the same workloads on the ``tensorlake`` local runner and on DBOS.

Each system is installed into its own virtual environment under ``benchmarks/.venvs/`` (made
if missing) and each workload runs as a subprocess there, ``benchmarks/reference/<system>_app.py
WORKLOAD N REPEATS WARMUP``, which prints JSON lines (``benchmarks/reference/_protocol.py``).
A workload that runs past its time box is stopped and reported as a lower bound; a size that
cannot fit its time box (judged from the smaller sizes) is skipped, with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SCRIPTS = HERE / "reference"
VENVS = HERE / ".venvs"
#: Pinned so that runs compare like with like; bump them here (the venv is then rebuilt).
PACKAGES = {"tensorlake": "tensorlake==0.5.163", "dbos": "dbos==3.4.0"}
SYSTEMS = ("cove", *PACKAGES)
#: Seconds a subprocess may take to import and launch its system before its time box starts.
STARTUP_ALLOWANCE_S = 60.0


class ReferenceSystemError(RuntimeError):
    pass


@dataclass(frozen=True)
class Job:
    """One subprocess: ``warmup`` untimed then ``repeats`` timed runs of ``workload(n)``."""

    workload: str  # noop, map, sequential or fanout
    n: int
    repeats: int
    warmup: int

    @property
    def key(self) -> str:
        return self.workload if self.workload == "noop" else f"{self.workload}-{self.n}"


def plan(system: str, map_sizes: tuple[int, ...], items: int, quick: bool) -> list[Job]:
    """What to run on a reference system: fewer repetitions than on Cove, as they are slow."""
    if system == "tensorlake":  # about 0.6 s per request, even with nothing to do
        noop = Job("noop", 0, 2 if quick else 5, 1)
    else:  # DBOS: milliseconds per workflow
        noop = Job("noop", 0, 20 if quick else 200, 5 if quick else 20)
    jobs = [noop]
    jobs += [Job("map", n, 3 if n <= 100 and not quick else 1, 1) for n in map_sizes]
    jobs += [Job("sequential", items, 1, 1), Job("fanout", items, 1, 1)]
    return jobs


def ensure_venv(
    system: str, log: Callable[[str], None], root: Path = VENVS, spec: str | None = None
) -> dict[str, Any]:
    """The system's virtual environment (``root/system``), made and filled if missing;
    returns its facts. ``spec``: the pip requirement, by default the system's pinned one
    (another, e.g. ``tensorlake==0.5.103`` in ``tensorlake-0.5.103``, for tests that need
    an older release beside the pinned one)."""
    spec = spec or PACKAGES[system]
    folder = root / system
    python = folder / "bin" / "python"
    marker = folder / ".installed"
    facts: dict[str, Any] = {"package": spec, "venv": str(folder), "install_s": 0.0}
    if not (python.exists() and marker.exists() and marker.read_text().strip() == spec):
        log(f"[{system}] installing {spec} into {folder} (once)")
        began = time.perf_counter()
        folder.parent.mkdir(parents=True, exist_ok=True)
        steps = [
            [sys.executable, "-m", "venv", "--clear", str(folder)],
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", spec],
        ]
        for command in steps:
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise ReferenceSystemError(
                    f"installing {spec} failed: {' '.join(command)}\n{done.stderr[-2000:]}"
                )
        marker.write_text(spec + "\n")
        facts["install_s"] = round(time.perf_counter() - began, 1)
    facts["python"] = str(python)
    name = spec.split("==")[0]
    version = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({name!r}))"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    facts["version"] = version.stdout.strip() or None
    return facts


def skip_reason(job: Job, done: dict[str, dict[str, Any]], time_box: float) -> str | None:
    """Why ``job`` cannot fit its time box, judged from the same workload at smaller sizes."""
    smaller = [
        r for r in done.values()
        if r["workload"] == job.workload and r["n"] < job.n and not r.get("skipped")
    ]  # fmt: skip
    if not smaller:
        return None
    smaller.sort(key=lambda r: r["n"])
    largest = smaller[-1]
    if largest["time_boxed"]:
        return f"{job.workload} of {largest['n']:,} already ran past the {time_box:g} s time box"
    if len(smaller) >= 2:  # the marginal cost per item between the two largest sizes
        second = smaller[-2]
        slope = (largest["median_s"] - second["median_s"]) / (largest["n"] - second["n"])
        how = f"linear from {second['n']:,} and {largest['n']:,} items"
    elif largest["n"] >= 1000:  # large enough that the fixed costs do not matter
        slope = largest["median_s"] / largest["n"]
        how = f"linear from {largest['n']:,} items"
    else:
        return None
    estimate = largest["median_s"] + slope * (job.n - largest["n"])
    if estimate > time_box:
        return f"about {estimate:.0f} s or more ({how}), past the {time_box:g} s time box"
    return None


def run_job(
    python: str, system: str, job: Job, time_box: float, scripts: Path = SCRIPTS
) -> dict[str, Any]:
    """Run one job in the system's venv; stop it ``time_box`` seconds after it is ready."""
    script = scripts / f"{system}_app.py"
    command = [python, str(script), job.workload, str(job.n), str(job.repeats), str(job.warmup)]
    result: dict[str, Any] = {**asdict(job), "runs_s": [], "time_boxed": False, "skipped": None}
    began = time.perf_counter()
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            command, cwd=scripts, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=stderr, start_new_session=True, text=True,
        )  # fmt: skip
        lines: queue.Queue[tuple[float, str | None]] = queue.Queue()

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.put((time.perf_counter(), line))
            lines.put((time.perf_counter(), None))

        threading.Thread(target=read, daemon=True).start()
        deadline = began + STARTUP_ALLOWANCE_S
        last_event = began
        finished = False
        while not finished:
            try:
                at, line = lines.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                break
            if line is None:
                finished = True
                break
            event = json.loads(line)
            last_event = at
            if event["event"] == "ready":
                result["startup_s"] = event["startup_s"]
                deadline = at + time_box
            elif event["event"] == "run":
                result["runs_s"].append(event["seconds"])
            elif event["event"] == "done":
                result["peak_rss_mb"] = event["peak_rss_mb"]
            elif event["event"] == "error":
                result["error"] = event["message"]
        if not finished:
            stopped = time.perf_counter()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            result["time_boxed"] = True
            # The run in progress has taken at least this long.
            result["lower_bound_s"] = round(stopped - last_event, 1)
        process.wait()
        stderr.seek(0)
        tail = stderr.read()[-3000:].decode(errors="replace")
    result["wall_s"] = round(time.perf_counter() - began, 1)
    if not result["time_boxed"] and (process.returncode != 0 or "error" in result):
        raise ReferenceSystemError(
            f"{system} {job.key} failed ({process.returncode}): {result.get('error', '')}\n{tail}"
        )
    if "startup_s" not in result and result["time_boxed"]:
        raise ReferenceSystemError(f"{system} did not start in {STARTUP_ALLOWANCE_S:g} s:\n{tail}")
    runs = result["runs_s"]
    result["median_s"] = round(statistics.median(runs), 6) if runs else None
    if job.workload == "noop" and runs:
        ordered = sorted(r * 1000 for r in runs)
        result["p50_ms"] = round(statistics.median(ordered), 3)
        result["p99_ms"] = round(ordered[min(len(ordered) - 1, len(ordered) * 99 // 100)], 3)
    return result


def run_reference(
    system: str,
    jobs: list[Job],
    time_box: float,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Install ``system`` if needed, then run its jobs in order; returns its results.

    A failure (no package index, a crash, a wrong answer) is recorded, not raised: the
    table then says which system or workload failed, and the rest of the run goes on.
    """
    try:
        facts = ensure_venv(system, log)
    except (ReferenceSystemError, OSError) as err:
        log(f"[{system}] cannot run: {err}")
        return {"system": system, "package": PACKAGES[system], "time_box_s": time_box,
                "error": str(err).splitlines()[0], "jobs": {}}  # fmt: skip
    facts.update(system=system, time_box_s=time_box, jobs={})
    done: dict[str, dict[str, Any]] = facts["jobs"]
    for job in jobs:
        reason = skip_reason(job, done, time_box)
        if reason:
            log(f"[{system}] {job.key}: skipped, {reason}")
            done[job.key] = {
                **asdict(job), "runs_s": [], "median_s": None, "time_boxed": False,
                "skipped": reason,
            }  # fmt: skip
            continue
        log(f"[{system}] {job.key}: {job.warmup} warm-up + {job.repeats} run(s), "
            f"time box {time_box:g} s")  # fmt: skip
        try:
            result = run_job(facts["python"], system, job, time_box)
        except (ReferenceSystemError, OSError) as err:
            log(f"[{system}] {job.key} failed: {err}")
            result = {**asdict(job), "runs_s": [], "median_s": None, "time_boxed": False,
                      "skipped": None, "error": str(err).splitlines()[0]}  # fmt: skip
        if result["time_boxed"]:
            log(f"[{system}] {job.key}: stopped at its time box after {result['wall_s']} s")
        done[job.key] = result
    return facts
