"""The measurements: one server per SQLite synchronous level, the same figures for each."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.machine import load_average
from benchmarks.server import APPS_FILE, ServerProcess, cpu_seconds, rss_kb

Watch = contextlib.AbstractContextManager[None]

#: How long the containers are left alone before their memory is read.
SETTLE_SECONDS = 2.0


@dataclass(frozen=True)
class Counts:
    """How much each benchmark does."""

    round_trip_warmup: int = 50
    round_trip_calls: int = 500
    fanout_items: int = 1000
    repeats: int = 3
    cold_batches: int = 3
    burst_requests: int = 200

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


FULL_COUNTS = Counts()
QUICK_COUNTS = Counts(
    round_trip_warmup=10,
    round_trip_calls=50,
    fanout_items=100,
    repeats=1,
    cold_batches=1,
    burst_requests=40,
)


class BenchmarkError(RuntimeError):
    pass


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _call(http: httpx.Client, app: str, body: Any = None, wait: float = 120) -> tuple[float, Any]:
    """POST ``/applications/{app}?wait=``; returns (seconds, decoded output)."""
    content = None if body is None else json.dumps(body).encode()
    headers = {} if body is None else {"Content-Type": "application/json"}
    began = time.perf_counter()
    response = http.post(
        f"/applications/{app}",
        params={"wait": wait},
        content=content,
        headers=headers,
        timeout=wait + 30,
    )
    elapsed = time.perf_counter() - began
    if response.status_code != 200:
        raise BenchmarkError(f"{app}: HTTP {response.status_code}: {response.text[:300]}")
    return elapsed, response.json()


class Profiler:
    """``py-spy record`` on the server (and its containers) around each phase, if asked."""

    def __init__(self, folder: Path | None, label: str) -> None:
        self.folder = folder
        self.label = label
        beside = Path(sys.executable).with_name("py-spy")
        self.py_spy = str(beside) if beside.exists() else shutil.which("py-spy")
        if folder is not None and self.py_spy is None:
            raise BenchmarkError("--profile needs py-spy (pip install py-spy)")

    @contextlib.contextmanager
    def phase(self, name: str, pid: int) -> Iterator[None]:
        if self.folder is None:
            yield
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        out = self.folder / f"{self.label}-{name}.txt"
        spy = subprocess.Popen(
            [str(self.py_spy), "record", "-p", str(pid), "--subprocesses", "-r", "250", "-f", "raw",
             "-o", str(out), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.0)  # let it attach
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()


class CpuMeter:
    """CPU seconds the server (all threads, and its event-loop thread) and containers used."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server

    def _now(self) -> tuple[float, float, dict[int, float]]:
        pid = self.server.pid
        containers = {p: cpu_seconds(p) or 0.0 for p in self.server.container_pids()}
        return cpu_seconds(pid) or 0.0, cpu_seconds(pid, pid) or 0.0, containers

    @contextlib.contextmanager
    def measure(self, into: dict[str, Any]) -> Iterator[None]:
        server0, loop0, containers0 = self._now()
        yield
        server1, loop1, containers1 = self._now()
        into["server_cpu_s"] = round(server1 - server0, 3)
        into["server_loop_cpu_s"] = round(loop1 - loop0, 3)
        into["containers_cpu_s"] = round(
            sum(v - containers0.get(p, 0.0) for p, v in containers1.items()), 3
        )


def _check(value: Any, expected: Any) -> None:
    if value != expected:
        raise BenchmarkError(f"wrong output {value!r}, expected {expected!r}")


PHASES = ("round_trip", "map", "sequential", "cold_start", "burst")


def run_level(
    synchronous: str | None,
    counts: Counts,
    data_root: Path,
    profile: Path | None = None,
    log: Callable[[str], None] = print,
    phases: tuple[str, ...] = PHASES,
) -> dict[str, Any]:
    """Every benchmark against one fresh server; ``synchronous=None`` is the default."""
    level = synchronous or "FULL"
    label = level + ("" if synchronous else " (default)")
    work = Path(tempfile.mkdtemp(prefix=f"cove-bench-{level.lower()}-", dir=data_root))
    result: dict[str, Any] = {
        "synchronous": level,
        "label": label,
        "env": {"COVE_SQLITE_SYNCHRONOUS": synchronous} if synchronous else {},
        "load_average_before": load_average(),
    }
    profiler = Profiler(profile, level.lower())
    server = ServerProcess(work / "data", synchronous)
    ok = False
    try:
        log(f"[{label}] starting a server on port {server.port} (data: {server.data_dir})")
        result["startup_s"] = round(server.start(), 3)
        result["server_pid"] = server.pid
        began = time.perf_counter()
        apps = server.deploy()
        result["deploy_s"] = round(time.perf_counter() - began, 3)
        missing = {"bench_noop", "bench_map", "bench_sequential"} - set(apps)
        if missing:
            raise BenchmarkError(f"deploy did not create {sorted(missing)}")
        result["server_rss_before_mb"] = _mb(rss_kb(server.pid))
        cpu = CpuMeter(server)
        with httpx.Client(base_url=server.url, timeout=150) as http:
            result["cold_first_call_s"] = round(_call(http, "bench_noop")[0], 4)
            if "round_trip" in phases:
                log(f"[{label}] round trip: {counts.round_trip_warmup} warm-up + "
                    f"{counts.round_trip_calls} calls")  # fmt: skip
                watch = profiler.phase("round_trip", server.pid)
                result["round_trip"] = _round_trip(http, counts, cpu, watch)
            for name, app in (("map", "bench_map"), ("sequential", "bench_sequential")):
                if name not in phases:
                    continue
                log(f"[{label}] {name}: {counts.fanout_items} items, warm-up + "
                    f"{counts.repeats} run(s)")  # fmt: skip
                watch = profiler.phase(name, server.pid)
                result[name] = _fan_out(http, app, counts, cpu, watch)
            if "cold_start" in phases:
                log(f"[{label}] cold starts: {counts.cold_batches} batches of 8 containers")
                result["cold_start"] = _cold_starts(http, server, counts)
            if "burst" in phases:
                log(f"[{label}] burst: {counts.burst_requests} concurrent requests")
                result["burst"] = _burst(server.url, counts)
        time.sleep(SETTLE_SECONDS)
        result["memory"] = _memory(server)
        result["load_average_after"] = load_average()
        ok = True
    finally:
        server.stop()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"[{label}] failed; the server's data folder and log are kept in {work}")
    return result


def _cold_starts(http: httpx.Client, server: ServerProcess, counts: Counts) -> dict[str, Any]:
    """Containers started from nothing: each batch is a new version (new pools) whose map
    needs 8 containers; the server times each from decision to ready."""
    p50s: list[float] = []
    p99s: list[float] = []
    starts = 0
    for batch in range(counts.cold_batches):
        # New code (a comment differs), so new pools: identical code would share the old.
        copy = Path(tempfile.mkdtemp(prefix="cove-bench-cold-")) / "apps.py"
        copy.write_text(APPS_FILE.read_text() + f"\n# cold-start batch {batch}\n")
        server.deploy(copy)
        _call(http, "bench_cold", 8)
        rows = http.get("/applications/bench_cold/functions").json()["functions"]
        row = next(r for r in rows if r["function"] == "cold" and not r["retired"])
        timing = row["cold_start_seconds"]
        p50s.append(timing["p50"])
        p99s.append(timing["p99"])
        starts += timing["count"]
    return {
        "containers": starts,
        "p50_ms": round(percentile(p50s, 50) * 1000, 2),
        "p99_ms": round(max(p99s) * 1000, 2),
    }


def _burst(url: str, counts: Counts) -> dict[str, Any]:
    """``burst_requests`` requests at once (one thread each) against warm=4, max=8."""
    import concurrent.futures

    def one(i: int) -> float:
        with httpx.Client(base_url=url, timeout=150) as client:
            began = time.perf_counter()
            r = client.post("/applications/bench_burst", params={"wait": 120}, json=i)
            r.raise_for_status()
            _check(r.json(), i)
            return time.perf_counter() - began

    began = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=counts.burst_requests) as pool:
        latencies = list(pool.map(one, range(counts.burst_requests)))
    total = time.perf_counter() - began
    ms = [x * 1000 for x in latencies]
    return {
        "requests": counts.burst_requests,
        "total_s": round(total, 3),
        "p50_ms": round(percentile(ms, 50), 1),
        "p90_ms": round(percentile(ms, 90), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(max(ms), 1),
    }


def _round_trip(http: httpx.Client, counts: Counts, cpu: CpuMeter, watch: Watch) -> dict[str, Any]:
    for _ in range(counts.round_trip_warmup):
        _call(http, "bench_noop")
    latencies: list[float] = []
    figures: dict[str, Any] = {"calls": counts.round_trip_calls}
    with watch, cpu.measure(figures):
        for _ in range(counts.round_trip_calls):
            seconds, value = _call(http, "bench_noop")
            _check(value, 0)
            latencies.append(seconds * 1000)
    figures.update(
        p50_ms=round(percentile(latencies, 50), 3),
        p90_ms=round(percentile(latencies, 90), 3),
        p99_ms=round(percentile(latencies, 99), 3),
        mean_ms=round(statistics.fmean(latencies), 3),
        min_ms=round(min(latencies), 3),
        max_ms=round(max(latencies), 3),
    )
    for key in ("server_cpu_s", "server_loop_cpu_s", "containers_cpu_s"):
        figures[key.replace("_s", "_ms_per_call")] = round(
            figures[key] * 1000 / counts.round_trip_calls, 3
        )
    return figures


def _fan_out(
    http: httpx.Client, app: str, counts: Counts, cpu: CpuMeter, watch: Watch
) -> dict[str, Any]:
    n = counts.fanout_items
    expected = n * (n + 1) // 2
    figures: dict[str, Any] = {"items": n}
    warm, value = _call(http, app, n, 300)  # starts (and keeps) the containers
    _check(value, expected)
    times = []
    with watch, cpu.measure(figures):
        for _ in range(counts.repeats):
            seconds, value = _call(http, app, n, 300)
            _check(value, expected)
            times.append(seconds)
    figures.update(
        warmup_s=round(warm, 4),
        runs_s=[round(t, 4) for t in times],
        median_s=round(statistics.median(times), 4),
    )
    figures["per_call_ms"] = round(figures["median_s"] * 1000 / n, 3)
    calls = n * counts.repeats
    for key in ("server_cpu_s", "server_loop_cpu_s", "containers_cpu_s"):
        figures[key.replace("_s", "_ms_per_call")] = round(figures[key] * 1000 / calls, 3)
    return figures


def _mb(kb: int | None) -> float | None:
    return None if kb is None else round(kb / 1024, 1)


def _memory(server: ServerProcess) -> dict[str, Any]:
    containers: list[dict[str, Any]] = []
    for pid, function in sorted(server.container_functions().items()):
        containers.append({"pid": pid, "function": function, "rss_mb": _mb(rss_kb(pid))})
    sizes: list[float] = [c["rss_mb"] for c in containers if c["rss_mb"] is not None]
    one = next(
        (c for c in containers if c["function"] == "inc"), containers[0] if containers else None
    )
    return {
        "server_rss_mb": _mb(rss_kb(server.pid)),
        "server_peak_rss_mb": _mb(rss_kb(server.pid, "VmHWM")),
        "container_rss_mb": one["rss_mb"] if one else None,
        "container_function": one["function"] if one else None,
        "containers": len(containers),
        "containers_rss_total_mb": round(sum(sizes), 1),
        "container_list": containers,
    }
