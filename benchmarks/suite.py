"""The measurements: one server per SQLite synchronous level, the same figures for each."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sqlite3
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
from benchmarks.throughput import measure_throughput
from cove.engine.engine import REAP_INTERVAL

Watch = contextlib.AbstractContextManager[None]

#: How long the containers are left alone before their memory is read.
SETTLE_SECONDS = 2.0


@dataclass(frozen=True)
class Counts:
    """How much each benchmark does."""

    round_trip_warmup: int = 50
    round_trip_calls: int = 500
    map_sizes: tuple[int, ...] = (100, 1000, 10000)
    fanout_items: int = 1000  # the sequential and fan-out workloads, and the map warm-up
    repeats: int = 3
    big_repeats: int = 1  # timed runs of sizes above fanout_items
    cold_batches: int = 5
    burst_requests: int = 200
    throughput_clients: int = 64
    throughput_warmup_s: float = 1.0
    throughput_seconds: float = 5.0
    wal_commits: int = 1000  # transactions timed per level of the SQLite WAL commit baseline
    idle_timeout_s: float = 60.0  # COVE_CONTAINER_IDLE_TIMEOUT (the default); then waited for

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def repeats_for(self, n: int) -> int:
        return self.repeats if n <= self.fanout_items else self.big_repeats


FULL_COUNTS = Counts()
QUICK_COUNTS = Counts(
    round_trip_warmup=10,
    round_trip_calls=50,
    map_sizes=(10, 100),
    fanout_items=100,
    repeats=1,
    cold_batches=1,
    burst_requests=40,
    throughput_clients=64,
    throughput_warmup_s=0.5,
    throughput_seconds=1.0,
    wal_commits=200,
    idle_timeout_s=5.0,
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


PHASES = ("round_trip", "cold_start", "map", "sequential", "fanout", "burst", "throughput")
APPS = {"bench_noop", "bench_map", "bench_sequential", "bench_fanout", "bench_cold", "bench_warm"}


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
    env = {"COVE_CONTAINER_IDLE_TIMEOUT": f"{counts.idle_timeout_s:g}"}
    server = ServerProcess(work / "data", synchronous, env=env)
    ok = False
    try:
        log(f"[{label}] SQLite WAL commits: {counts.wal_commits} at FULL, then at NORMAL")
        result["wal_commit"] = wal_commit_cost(work, counts.wal_commits)
        log(f"[{label}] starting a server on port {server.port} (data: {server.data_dir})")
        result["startup_s"] = round(server.start(), 3)
        result["server_pid"] = server.pid
        began = time.perf_counter()
        apps = server.deploy()
        result["deploy_s"] = round(time.perf_counter() - began, 3)
        missing = APPS - set(apps)
        if missing:
            raise BenchmarkError(f"deploy did not create {sorted(missing)}")
        result["server_rss_before_mb"] = _mb(rss_kb(server.pid))
        cpu = CpuMeter(server)
        with httpx.Client(base_url=server.url, timeout=150) as http:
            result["cold_first_call_s"] = round(_call(http, "bench_noop")[0], 4)
            time.sleep(SETTLE_SECONDS)
            result["memory_before"] = _memory(server)
            if "round_trip" in phases:
                log(f"[{label}] round trip: {counts.round_trip_warmup} warm-up + "
                    f"{counts.round_trip_calls} calls")  # fmt: skip
                watch = profiler.phase("round_trip", server.pid)
                result["round_trip"] = _round_trip(http, counts, cpu, watch)
            # Before the fan-outs fill the machine's memory (1 GB a container by default): a
            # warm container does not evict idle ones, so it could not start then.
            if "cold_start" in phases:
                log(f"[{label}] cold and warm starts: {counts.cold_batches} batch(es) of 8 "
                    "containers")  # fmt: skip
                result["cold_start"] = _cold_starts(http, server, counts)
            if "map" in phases:
                _call(http, "bench_map", counts.fanout_items, 300)  # starts the containers
                result["maps"] = {}
                for n in counts.map_sizes:
                    repeats = counts.repeats_for(n)
                    log(f"[{label}] map of {n}: {repeats} run(s)")
                    watch = profiler.phase(f"map-{n}", server.pid)
                    result["maps"][str(n)] = _fan_out(http, "bench_map", n, repeats, cpu, watch)
            for name, app in (("sequential", "bench_sequential"), ("fanout", "bench_fanout")):
                if name not in phases:
                    continue
                log(f"[{label}] {name}: {counts.fanout_items} calls, warm-up + "
                    f"{counts.repeats} run(s)")  # fmt: skip
                watch = profiler.phase(name, server.pid)
                _call(http, app, counts.fanout_items, 300)  # starts (and keeps) the containers
                result[name] = _fan_out(http, app, counts.fanout_items, counts.repeats, cpu, watch)
            if "burst" in phases:
                log(f"[{label}] burst: {counts.burst_requests} concurrent requests")
                result["burst"] = _burst(server.url, counts)
            if "throughput" in phases:
                log(f"[{label}] throughput: {counts.throughput_clients} clients for "
                    f"{counts.throughput_seconds:g} s")  # fmt: skip
                with profiler.phase("throughput", server.pid):
                    result["throughput"] = measure_throughput(
                        "127.0.0.1", server.port, "/applications/bench_noop?wait=60", b"0",
                        counts.throughput_clients, counts.throughput_warmup_s,
                        counts.throughput_seconds,
                    )  # fmt: skip
        time.sleep(SETTLE_SECONDS)
        result["memory"] = _memory(server)
        # Containers nobody needs stop once idle for the timeout (the reaper looks every
        # REAP_INTERVAL at most); what is left are the warm ones the apps ask for.
        log(f"[{label}] idle for the container idle timeout ({counts.idle_timeout_s:g} s)")
        idle = counts.idle_timeout_s
        time.sleep(idle + min(REAP_INTERVAL, idle) + SETTLE_SECONDS)
        result["memory_idle"] = _memory(server)
        result["load_average_after"] = load_average()
        ok = True
    finally:
        server.stop()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"[{label}] failed; the server's data folder and log are kept in {work}")
    return result


def wal_commit_cost(folder: Path, transactions: int = 1000) -> dict[str, Any]:
    """What one SQLite commit in WAL mode costs on ``folder``'s file system, at
    ``synchronous=FULL`` and at ``NORMAL``: ``transactions`` transactions of one small INSERT
    each, with the standard library's ``sqlite3``, in a throw-away database per level.

    ``full_ms``/``normal_ms`` are wall-clock milliseconds per commit, ``full_cpu_ms``/
    ``normal_cpu_ms`` this process's CPU milliseconds per commit (the rest is waiting for
    the disk), ``full_total_s``/``normal_total_s`` the whole run's seconds. SQLite's
    automatic checkpoint (every 1,000 WAL pages) is left on, as a server has it."""
    figures: dict[str, Any] = {"transactions": transactions}
    scratch = Path(tempfile.mkdtemp(prefix="wal-commit-", dir=folder))
    try:
        for level in ("FULL", "NORMAL"):
            db = sqlite3.connect(scratch / f"{level.lower()}.db", isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"PRAGMA synchronous={level}")
                db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
                row = "x" * 100
                for _ in range(10):  # warm-up: the WAL file and the first pages exist
                    db.execute("INSERT INTO t (body) VALUES (?)", (row,))
                wall0, cpu0 = time.perf_counter(), time.process_time()
                for _ in range(transactions):
                    db.execute("BEGIN")
                    db.execute("INSERT INTO t (body) VALUES (?)", (row,))
                    db.execute("COMMIT")
                wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            finally:
                db.close()
            name = level.lower()
            figures[f"{name}_ms"] = round(wall * 1000 / transactions, 4)
            figures[f"{name}_cpu_ms"] = round(cpu * 1000 / transactions, 4)
            figures[f"{name}_total_s"] = round(wall, 3)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return figures


def _cold_starts(http: httpx.Client, server: ServerProcess, counts: Counts) -> dict[str, Any]:
    """Containers started from nothing: each batch is a new version (new pools) whose map
    needs 8 containers; the server times each from decision to ready. The same deploy starts
    ``bench_warm``'s one warm container; once it is idle, its first request is a warm start."""
    p50s: list[float] = []
    p99s: list[float] = []
    warm_ms: list[float] = []
    starts = 0
    for batch in range(counts.cold_batches):
        # New code (a comment differs), so new pools: identical code would share the old.
        copy = Path(tempfile.mkdtemp(prefix="cove-bench-cold-")) / "apps.py"
        copy.write_text(APPS_FILE.read_text() + f"\n# cold-start batch {batch}\n")
        server.deploy(copy)
        shutil.rmtree(copy.parent, ignore_errors=True)
        _wait_for_idle_container(http, "bench_warm")
        seconds, value = _call(http, "bench_warm")
        _check(value, 0)
        warm_ms.append(seconds * 1000)
        _call(http, "bench_cold", 8)
        row = _pool(http, "bench_cold", "cold")
        timing = row["cold_start_seconds"]
        p50s.append(timing["p50"])
        p99s.append(timing["p99"])
        starts += timing["count"]
    return {
        "containers": starts,
        "p50_ms": round(percentile(p50s, 50) * 1000, 2),
        "p99_ms": round(max(p99s) * 1000, 2),
        "warm_p50_ms": round(percentile(warm_ms, 50), 2),
        "warm_ms": [round(x, 2) for x in warm_ms],
    }


def _pool(http: httpx.Client, app: str, function: str) -> dict[str, Any]:
    """The current (not retired) pool of ``function`` in ``app``."""
    rows = http.get(f"/applications/{app}/functions").json()["functions"]
    found: dict[str, Any] = next(r for r in rows if r["function"] == function and not r["retired"])
    return found


def _wait_for_idle_container(http: httpx.Client, app: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    row: dict[str, Any] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(StopIteration):
            row = _pool(http, app, app)
            if any(c["state"] == "idle" for c in row["containers"]):
                return
        time.sleep(0.02)
    raise BenchmarkError(f"{app}'s warm container was not ready in {timeout:g} s: {row}")


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
    http: httpx.Client, app: str, n: int, repeats: int, cpu: CpuMeter, watch: Watch
) -> dict[str, Any]:
    """``repeats`` timed requests ``app(n)``; each must answer ``sum(i + 1 for i < n)``."""
    expected = n * (n + 1) // 2
    figures: dict[str, Any] = {"items": n}
    times = []
    with watch, cpu.measure(figures):
        for _ in range(repeats):
            seconds, value = _call(http, app, n, 300)
            _check(value, expected)
            times.append(seconds)
    figures.update(
        runs_s=[round(t, 4) for t in times],
        median_s=round(statistics.median(times), 4),
    )
    figures["per_call_ms"] = round(figures["median_s"] * 1000 / n, 3)
    calls = n * repeats
    for key in ("server_cpu_s", "server_loop_cpu_s", "containers_cpu_s"):
        figures[key.replace("_s", "_ms_per_call")] = round(figures[key] * 1000 / calls, 3)
    return figures


def _mb(kb: int | None) -> float | None:
    return None if kb is None else round(kb / 1024, 1)


def _memory(server: ServerProcess) -> dict[str, Any]:
    """The server's RSS, and its containers' (template processes apart)."""
    containers: list[dict[str, Any]] = []
    templates = 0
    for pid, function in sorted(server.container_functions().items()):
        rss = _mb(rss_kb(pid))
        if function == "template":
            templates += 1
        elif rss is not None:  # (None: it stopped meanwhile)
            containers.append({"pid": pid, "function": function, "rss_mb": rss})
    sizes: list[float] = [c["rss_mb"] for c in containers]
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
        "templates": templates,
    }
