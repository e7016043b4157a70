"""``python -m benchmarks.ray``: the warm call round trip and the cold start through the Ray
runtime, next to the local runtime (docs/ray.md, "Performance").

It creates a network namespace of its own (loopback only: nothing leaves the machine, and
its ports cannot clash with anyone's), starts a one-node Ray cluster in it, and two
``cove server`` processes in it, each on its own data folder: one with ``--runtime local``
and one with ``--runtime ray``. Both are reached the same way, through a Unix socket that a
forwarder inside the namespace relays to the server's port (tests/raycluster.py), and both
get ``benchmarks/apps.py`` deployed. Then, on both:

- cold start: the first calls of a freshly deployed version (new pools), timed by the
  client, and each container's start as the server times it (decision to ready); per
  round, a new version of the code;
- warm round trip: ``POST /applications/<app>?wait=`` of ``bench_noop()`` (no argument),
  ``bench_sequential(0)`` (one small argument) and ``bench_sequential(1)`` (one blocking
  child call: container -> server -> container), the calls of the two runtimes interleaved
  so that the machine's other load falls on both alike; p50/p90/p99 over ``--calls``;
- server CPU per warm call, and each server's CPU while idle with its containers warm
  (the Ray runtime polls each actor's memory twice a second).

Last, a plain Ray driver in the namespace times Ray alone: creating an empty actor until
its first method answers (with and without ``env_vars`` in its ``runtime_env``, which costs
a new worker process per actor), importing Cove's worker in a fresh actor, and a warm actor
method call. Skips (exit 0) where ``ip netns`` or Ray is missing.
Not part of the default benchmark suite.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from tests.raycluster import Cluster, skip_reason

from benchmarks.machine import load_average, machine_facts
from benchmarks.server import APPS_FILE, cpu_seconds
from benchmarks.suite import _call, _pool, _wait_for_idle_container, percentile

RESULT = Path(__file__).parent / "results" / "ray.json"
GCS_PORT = 6379  # inside the namespace: no clash with any other cluster
PORTS = {"local": 8001, "ray": 8002}
RUNTIMES = tuple(PORTS)
SERVER_ENV = {"COVE_CONTAINER_IDLE_TIMEOUT": "900"}  # nothing stops while we measure

#: name -> (application, body, expected output)
WORKLOADS: dict[str, tuple[str, Any, int]] = {
    "noop": ("bench_noop", None, 0),
    "arg": ("bench_sequential", 0, 0),
    "nested": ("bench_sequential", 1, 1),
}
TITLES = {
    "noop": "no argument (bench_noop)",
    "arg": "one small argument (bench_sequential(0))",
    "nested": "one nested call (bench_sequential(1))",
}

RAY_PROBE = """
import json, sys, time
import ray
address, rounds, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ray.init(address=address, namespace="cove-bench-probe", log_to_driver=False,
         configure_logging=False, _node_ip_address="127.0.0.1")
class Empty:
    def ping(self):
        return 0
    def load(self):
        began = time.perf_counter()
        import cove.runtime.worker
        return (time.perf_counter() - began) * 1000
Actor = ray.remote(Empty)
def start(env):
    options = dict(num_cpus=1, memory=2**30, max_restarts=0, scheduling_strategy="SPREAD")
    if env:
        options["runtime_env"] = {"env_vars": env}
    began = time.perf_counter()
    actor = Actor.options(**options).remote()
    ray.get(actor.ping.remote())
    return actor, (time.perf_counter() - began) * 1000
out = {"plain_ms": [], "runtime_env_ms": [], "import_worker_ms": [], "method_call_ms": []}
for i in range(rounds):
    actor, ms = start(None)
    out["plain_ms"].append(ms)
    out["import_worker_ms"].append(ray.get(actor.load.remote()))
    if i == 0:
        for _ in range(20):
            ray.get(actor.ping.remote())
        for _ in range(calls):
            began = time.perf_counter()
            ray.get(actor.ping.remote())
            out["method_call_ms"].append((time.perf_counter() - began) * 1000)
    ray.kill(actor)
    actor, ms = start({"COVE_BLOB_URL": "file:///nowhere", "COVE_BLOB_FSYNC": "1"})
    out["runtime_env_ms"].append(ms)
    ray.kill(actor)
print("RESULT " + json.dumps(out), flush=True)
"""


def _stats(ms: list[float]) -> dict[str, Any]:
    return {
        "count": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p90_ms": round(percentile(ms, 90), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "min_ms": round(min(ms), 3),
        "max_ms": round(max(ms), 3),
    }


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def _deploy(http: httpx.Client, path: Path) -> float:
    files = {"code": (path.name, path.read_bytes(), "text/x-python")}
    began = time.perf_counter()
    response = http.post("/applications", files=files, timeout=180)
    if response.status_code != 201:
        raise RuntimeError(f"deploy: HTTP {response.status_code}: {response.text[:300]}")
    return time.perf_counter() - began


def _cold_round(http: httpx.Client) -> dict[str, float]:
    """The first calls of a version just deployed: ``bench_warm`` (its one warm container
    started at deploy, waited for), then ``bench_noop`` (one container to start) and
    ``bench_sequential(1)`` (its container, then ``inc``'s), in client milliseconds; and
    each container's start as the server timed it."""
    _wait_for_idle_container(http, "bench_warm", 300)
    out = {"warm_start_ms": _call(http, "bench_warm")[0] * 1000}
    seconds, value = _call(http, "bench_noop", None, 300)
    _expect(value, 0)
    out["first_call_ms"] = seconds * 1000
    seconds, value = _call(http, "bench_sequential", 1, 300)
    _expect(value, 1)
    out["first_nested_call_ms"] = seconds * 1000
    for app, function in (
        ("bench_noop", "bench_noop"),
        ("bench_sequential", "bench_sequential"),
        ("bench_sequential", "inc"),
    ):
        last = _pool(http, app, function)["cold_start_seconds"]["last"]
        out[f"container_start_{function}_ms"] = last * 1000
    return out


def _containers(http: httpx.Client) -> int:
    """How many containers the server holds (of every version deployed)."""
    ids = {
        c["id"]
        for app in ("bench_noop", "bench_sequential", "bench_warm")
        for row in http.get(f"/applications/{app}/functions").json()["functions"]
        for c in row["containers"]
        if c["id"] is not None
    }
    return len(ids)


def _expect(value: Any, expected: Any) -> None:
    if value != expected:
        raise RuntimeError(f"wrong output {value!r}, expected {expected!r}")


def _server_cpu(pids: dict[str, int | None]) -> dict[str, float | None]:
    return {rt: (cpu_seconds(pid) if pid else None) for rt, pid in pids.items()}


def _diff(after: dict[str, float | None], before: dict[str, float | None], rt: str) -> float | None:
    a, b = after.get(rt), before.get(rt)
    return None if a is None or b is None else a - b


def run(args: argparse.Namespace) -> dict[str, Any]:
    log = print
    result: dict[str, Any] = {"load_average_before": load_average()}
    with Cluster.create("cove-bench-ray") as cluster:
        log(f"namespace {cluster.ns}: starting a Ray head node")
        began = time.perf_counter()
        cluster.start_head(GCS_PORT, cpus=args.ray_cpus, memory_gb=args.ray_cpus)
        result["ray_head_start_s"] = round(time.perf_counter() - began, 2)
        clients: dict[str, httpx.Client] = {}
        address = f"127.0.0.1:{GCS_PORT}"
        runtime = {"local": ["--runtime", "local"],
                   "ray": ["--runtime", "ray", "--ray-address", address]}  # fmt: skip
        for rt in RUNTIMES:
            began = time.perf_counter()
            clients[rt] = cluster.start_server(rt, PORTS[rt], runtime[rt], SERVER_ENV)
            result.setdefault("server_start_s", {})[rt] = round(time.perf_counter() - began, 2)
            log(f"[{rt}] server up in {result['server_start_s'][rt]} s")
        pids = {rt: cluster.pid(rt) for rt in RUNTIMES}

        # Cold starts: round 0 on the first deploy, then one new version per round.
        cold: dict[str, list[dict[str, float]]] = {rt: [] for rt in RUNTIMES}
        work = Path(tempfile.mkdtemp(prefix="cove-bench-ray-"))
        try:
            for r in range(args.cold_rounds):
                code = APPS_FILE
                if r:  # new code (a comment differs), so new pools: identical code shares
                    code = work / "apps.py"
                    code.write_text(APPS_FILE.read_text() + f"\n# cold-start round {r}\n")
                order = RUNTIMES if r % 2 == 0 else RUNTIMES[::-1]
                for rt in order:
                    _deploy(clients[rt], code)
                    cold[rt].append(_cold_round(clients[rt]))
                    figures = ", ".join(f"{k} {v:.1f}" for k, v in cold[rt][-1].items())
                    log(f"[{rt}] cold round {r}: {figures}")
                if r == 0:
                    result["warm"] = _warm(clients, pids, cluster, args, log)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        result["cold"] = {
            rt: {
                "rounds": rows,
                **{f"median_{key}": _median([row[key] for row in rows]) for key in rows[0]},
            }
            for rt, rows in cold.items()
        }
        # Idle: each server with its containers warm, nothing asked of it.
        before = _server_cpu(pids)
        time.sleep(args.idle_seconds)
        after = _server_cpu(pids)
        result["idle_server_cpu_percent"] = {
            rt: (None if (d := _diff(after, before, rt)) is None
                 else round(d * 100 / args.idle_seconds, 1))
            for rt in RUNTIMES
        }  # fmt: skip
        result["containers"] = {rt: _containers(clients[rt]) for rt in RUNTIMES}
        for rt in RUNTIMES:
            cluster.kill(rt)  # their actors go with the Ray server's driver
        log(f"Ray alone: {args.probe_rounds} empty actors, {args.calls} method calls")
        result["ray_alone"] = _probe(cluster, args)
    result["load_average_after"] = load_average()
    return result


def _warm(
    clients: dict[str, httpx.Client],
    pids: dict[str, int | None],
    cluster: Cluster,
    args: argparse.Namespace,
    log: Any,
) -> dict[str, Any]:
    """Warm round trips, the runtimes' calls interleaved (and in alternating order)."""
    log(f"warm round trips: {args.warmup} warm-up + {args.calls} calls of each workload")
    for app, body, expected in WORKLOADS.values():
        for rt in RUNTIMES:
            for _ in range(args.warmup):
                _expect(_call(clients[rt], app, body)[1], expected)
    times: dict[str, dict[str, list[float]]] = {rt: {w: [] for w in WORKLOADS} for rt in RUNTIMES}
    before = _server_cpu(pids)
    for i in range(args.calls):
        for name, (app, body, expected) in WORKLOADS.items():
            for rt in RUNTIMES if i % 2 == 0 else RUNTIMES[::-1]:
                seconds, value = _call(clients[rt], app, body)
                _expect(value, expected)
                times[rt][name].append(seconds * 1000)
    after = _server_cpu(pids)
    calls = args.calls * len(WORKLOADS)
    out: dict[str, Any] = {}
    for rt in RUNTIMES:
        cpu = _diff(after, before, rt)
        out[rt] = {name: _stats(ms) for name, ms in times[rt].items()}
        out[rt]["server_cpu_ms_per_request"] = None if cpu is None else round(cpu * 1000 / calls, 3)
    return out


def _probe(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    cluster.spawn(
        "probe",
        [sys.executable, "-c", RAY_PROBE, f"127.0.0.1:{GCS_PORT}", str(args.probe_rounds),
         str(args.calls)],
        proc=False,  # a Ray driver must see its node's raylet
    )  # fmt: skip
    proc = cluster.procs["probe"]
    try:
        proc.wait(300)
    except Exception:
        cluster.kill("probe")
        raise
    line = next((x for x in cluster.log("probe").splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"the Ray probe failed:\n{cluster.log('probe')[-3000:]}")
    raw = json.loads(line.removeprefix("RESULT "))
    return {
        "actor_start_median_ms": _median(raw["plain_ms"]),
        "actor_start_runtime_env_median_ms": _median(raw["runtime_env_ms"]),
        "import_worker_median_ms": _median(raw["import_worker_ms"]),
        "method_call": _stats(raw["method_call_ms"]),
        "raw": {k: [round(x, 2) for x in v] for k, v in raw.items() if k != "method_call_ms"},
    }


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f} ms"


def table(result: dict[str, Any]) -> str:
    warm, cold, alone = result["warm"], result["cold"], result["ray_alone"]
    rows = ["| Figure | local runtime | Ray runtime | Ray minus local |", "|---|---|---|---|"]
    for name in WORKLOADS:
        for q in ("p50", "p90", "p99"):
            a, b = warm["local"][name][f"{q}_ms"], warm["ray"][name][f"{q}_ms"]
            rows.append(f"| Warm round trip, {TITLES[name]}, {q} | {_fmt(a)} | {_fmt(b)} | "
                        f"{b - a:+.2f} ms |")  # fmt: skip
    a, b = (warm[rt]["server_cpu_ms_per_request"] for rt in RUNTIMES)
    rows.append(f"| Server CPU per warm request (all three kinds) | {_fmt(a)} | {_fmt(b)} | - |")
    for key, title in (
        ("first_call_ms", "Cold first call, one container (bench_noop), median"),
        ("first_nested_call_ms", "Cold first call with a child, two containers, median"),
        ("container_start_bench_noop_ms", "· its container's start, decision to ready (server)"),
        ("container_start_bench_sequential_ms", "· the parent's container start (server)"),
        ("container_start_inc_ms", "· the child's container start (server)"),
        ("warm_start_ms", "Warm start: first call on a pre-started container, median"),
    ):
        a, b = cold["local"][f"median_{key}"], cold["ray"][f"median_{key}"]
        diff = "-" if a is None or b is None else f"{b - a:+,.1f} ms"
        rows.append(f"| {title} | {_fmt(a, 1)} | {_fmt(b, 1)} | {diff} |")
    idle = result["idle_server_cpu_percent"]
    rows.append(f"| Idle server CPU, containers warm ({result['containers']['ray']} of them) | "
                f"{idle['local']} % | {idle['ray']} % | - |")  # fmt: skip
    rows.append(f"| Ray alone: an empty actor created until its first method answers, median "
                f"| - | {_fmt(alone['actor_start_median_ms'], 1)} | - |")  # fmt: skip
    rows.append(f"| Ray alone: the same with env_vars in its runtime_env, median | - | "
                f"{_fmt(alone['actor_start_runtime_env_median_ms'], 1)} | - |")  # fmt: skip
    rows.append(f"| Ray alone: importing Cove's worker in a fresh actor, median | - | "
                f"{_fmt(alone['import_worker_median_ms'], 1)} | - |")  # fmt: skip
    call = alone["method_call"]
    rows.append(f"| Ray alone: a warm actor method call, p50 / p99 | - | "
                f"{call['p50_ms']:.2f} / {call['p99_ms']:.2f} ms | - |")  # fmt: skip
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ray",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--calls", type=int, default=500, help="timed warm calls per workload")
    parser.add_argument("--warmup", type=int, default=50, help="warm-up calls per workload")
    parser.add_argument("--cold-rounds", type=int, default=5, help="versions deployed, cold")
    parser.add_argument("--probe-rounds", type=int, default=5, help="empty Ray actors started")
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--ray-cpus", type=int, default=32,
                        help="logical CPUs (and GiB) of the Ray node: an actor holds one, idle "
                             "or not, and every round adds four")  # fmt: skip
    parser.add_argument("--json", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    reason = skip_reason()
    if reason is not None:
        print(f"skipped: {reason}")
        return
    facts = machine_facts(Path(tempfile.gettempdir()))
    began = time.perf_counter()
    result = run(args)
    facts["seconds"] = round(time.perf_counter() - began, 1)
    print()
    print(table(result))
    settings = {k: getattr(args, k) for k in ("calls", "warmup", "cold_rounds", "probe_rounds",
                                              "idle_seconds", "ray_cpus")}  # fmt: skip
    facts["ray"] = importlib.metadata.version("ray")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    document = {"machine": facts, "settings": settings, "results": result}
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\n{facts['date']}, {facts['cores']} cores, load {facts['load_average_at_start']} "
          f"-> {result['load_average_after']}; written to {args.json}")  # fmt: skip


if __name__ == "__main__":
    main()
