"""``python -m benchmarks.soak --minutes N``: a steady mixed load on one ``cove server`` for N
minutes, sampling what would grow if something leaked, and a verdict.

The server is a real subprocess (:class:`benchmarks.server.ServerProcess`) on SQLite (its
data folder) or on a throw-away PostgreSQL (``--database postgresql``, started as
``tests/postgres.py`` does; or ``--database-url`` names one). It runs with a short retention
(``--retention-seconds``, passed as ``cove server --retention-days``) and a cleanup pass every
``--cleanup-seconds`` (``COVE_CLEANUP_INTERVAL``), so retention bounds the journal within the
run. Client threads send, at a steady ``--rate``, a fixed cycle of requests from
``benchmarks/soak_apps.py``: round trips, maps, files in and out, a child call that fails once
and is retried, and requests that fail; every answer is checked.

Every ``--sample-seconds`` it records the server's RSS, open descriptors and threads, its live
containers (``GET /applications/{app}/functions``, and their processes), the database's size
(SQLite: the file, its WAL and shared memory; PostgreSQL: ``pg_database_size``) and rows
(requests, function calls) and the blob store's size.

Verdict (over the samples after the warm-up: the first ``--warmup-fraction`` of the run, at
least retention + two cleanup intervals, at most half of it), comparing the last third of
those samples with the first third:

- memory: the server's RSS stays within 10 % (max over min);
- descriptors, threads and containers: no growth (the last third's maximum is at most the
  first third's plus a small tolerance);
- database: bounded (the last third's largest size at most 10 % + 1 MiB above the first
  third's; the rows too) and retention ran (fewer rows than requests sent);
- the load: no unexpected answer, and the server still up.

Writes ``benchmarks/results/soak-<database>.json`` and a plot beside it; ``--publish`` also
writes ``docs/soak.png`` and the "Soak" section of docs/benchmarks.md (between
``<!-- soak:begin -->`` and ``<!-- soak:end -->``). Exit status 0 when every check passes.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.machine import load_average, machine_facts
from benchmarks.server import ServerProcess, rss_kb

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parent.parent
APPS_FILE = Path(__file__).with_name("soak_apps.py")
PUBLISHED_PLOT = REPO / "docs" / "soak.png"
DOC = REPO / "docs" / "benchmarks.md"
BEGIN = "<!-- soak:begin -->"
END = "<!-- soak:end -->"
APPS = ("soak_noop", "soak_map", "soak_file", "soak_retry", "soak_fail")
#: The load's cycle: each client thread takes the next kind in turn.
CYCLE = (
    "noop", "map", "file", "noop", "retry",
    "noop", "map", "file", "noop", "fail",
)  # fmt: skip
MEMORY_SPREAD = 0.10  # RSS after the warm-up: max / min - 1
DB_GROWTH = 0.10  # the last third's largest size over the first third's, beyond DB_SLACK
DB_SLACK = 1024 * 1024
FD_SLACK = 4
THREAD_SLACK = 2
CONTAINER_SLACK = 1


@dataclass
class Config:
    minutes: float
    database: str = "sqlite"
    database_url: str | None = None
    sample_seconds: float = 10.0
    retention_seconds: float = 60.0
    cleanup_seconds: float = 10.0
    warmup_fraction: float = 0.2
    clients: int = 4
    rate: float = 8.0  # requests per second, all clients together
    map_size: int = 20
    file_kib: int = 64

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "database_url"}


# -- the load ---------------------------------------------------------------------------------


@dataclass
class LoadStats:
    sent: Counter[str] = field(default_factory=Counter)
    ok: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latency_s: dict[str, list[float]] = field(default_factory=dict)
    first_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.sent[kind] += 1
            if error is None:
                self.ok[kind] += 1
                self.latency_s.setdefault(kind, []).append(seconds)
            else:
                self.errors[kind] += 1
                if len(self.first_errors) < 20:
                    self.first_errors.append(f"{kind}: {error}")

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return {"sent": sum(self.sent.values()), "errors": sum(self.errors.values())}

    def summary(self) -> dict[str, Any]:
        with self.lock:
            kinds = sorted(self.sent)
            return {
                "sent": sum(self.sent.values()),
                "errors": sum(self.errors.values()),
                "by_kind": {
                    k: {
                        "sent": self.sent[k],
                        "ok": self.ok[k],
                        "errors": self.errors[k],
                        "p50_ms": _ms(_median(self.latency_s.get(k, []))),
                        "max_ms": _ms(max(self.latency_s.get(k, []), default=None)),
                    }
                    for k in kinds
                },
                "first_errors": list(self.first_errors),
            }


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def one_request(http: httpx.Client, kind: str, n: int, config: Config) -> str | None:
    """Send one request of ``kind`` and check its answer; None when it is the expected one."""
    wait = {"wait": 120}
    if kind == "noop":
        r = http.post("/applications/soak_noop", params=wait)
        return None if r.status_code == 200 and r.json() == 0 else _odd(r)
    if kind == "map":
        m = config.map_size
        r = http.post("/applications/soak_map", params=wait, json=m)
        return None if r.status_code == 200 and r.json() == m * (m + 1) // 2 else _odd(r)
    if kind == "file":
        body = random.randbytes(config.file_kib * 1024)
        r = http.post(
            "/applications/soak_file",
            params=wait,
            content=body,
            headers={"Content-Type": "application/octet-stream"},
        )
        return None if r.status_code == 200 and r.content == body[::-1] else _odd(r, text=False)
    if kind == "retry":
        r = http.post("/applications/soak_retry", params=wait, json=n)
        return None if r.status_code == 200 and r.json() == 2 * n else _odd(r)
    if kind == "fail":
        reason = f"soak failure {n}"
        r = http.post("/applications/soak_fail", params=wait, json=reason)
        # A failed request answers 500 with the code request_failed and the error raised.
        with contextlib.suppress(ValueError, KeyError, TypeError):
            error = r.json()["error"]
            if r.status_code == 500 and error["code"] == "request_failed":
                return None if reason in error["message"] else _odd(r)
        return _odd(r)
    raise ValueError(kind)


def _odd(r: httpx.Response, text: bool = True) -> str:
    shown = r.text[:200] if text else f"{len(r.content)} bytes"
    return f"HTTP {r.status_code}: {shown}"


class Load:
    """``clients`` threads sending the cycle at ``rate`` requests/s until stopped."""

    def __init__(self, url: str, config: Config) -> None:
        self.url = url
        self.config = config
        self.stats = LoadStats()
        self.stop = threading.Event()
        self._turn = itertools.count()
        self._threads = [
            threading.Thread(target=self._client, name=f"soak-client-{i}", daemon=True)
            for i in range(config.clients)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(150)

    def _client(self) -> None:
        period = self.config.clients / self.config.rate
        due = time.monotonic()
        with httpx.Client(base_url=self.url, timeout=180) as http:
            while not self.stop.is_set():
                n = next(self._turn)
                kind = CYCLE[n % len(CYCLE)]
                began = time.perf_counter()
                try:
                    error = one_request(http, kind, n, self.config)
                except httpx.HTTPError as err:
                    error = f"{type(err).__name__}: {err}"
                self.stats.record(kind, time.perf_counter() - began, error)
                due = max(due + period, time.monotonic())  # steady: late is not made up
                self.stop.wait(max(0.0, due - time.monotonic()))


# -- the samples ------------------------------------------------------------------------------


def proc_count(pid: int, what: str) -> int | None:
    """Open descriptors (``fd``) or threads (``task``) of ``pid``."""
    try:
        return len(os.listdir(f"/proc/{pid}/{what}"))
    except OSError:
        return None


def folder_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).stat().st_size
    return total


class Database:
    """Size and rows of the server's database."""

    def __init__(self, sqlite_file: Path | None = None, url: str | None = None) -> None:
        self.sqlite_file = sqlite_file
        self.url = url

    def measure(self) -> dict[str, int | None]:
        query = "SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM function_calls)"
        if self.url is not None:
            import psycopg

            with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as pg:
                found = pg.execute("SELECT pg_database_size(current_database())").fetchone()
                rows = pg.execute(query).fetchone()
            assert found is not None and rows is not None
            return {"db_bytes": int(found[0]), "requests_rows": rows[0], "calls_rows": rows[1]}
        import sqlite3

        assert self.sqlite_file is not None
        size = 0
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                size += Path(f"{self.sqlite_file}{suffix}").stat().st_size
        requests = calls = None
        with contextlib.suppress(sqlite3.Error):
            conn = sqlite3.connect(f"file:{self.sqlite_file}?mode=ro", uri=True, timeout=10)
            try:
                requests, calls = conn.execute(query).fetchone()
            finally:
                conn.close()
        return {"db_bytes": size, "requests_rows": requests, "calls_rows": calls}


def containers(http: httpx.Client) -> int | None:
    """Live containers of the soak's applications, as the server reports them (the
    applications of one file share their pools: each container is counted once)."""
    ids: set[str] = set()
    starting = 0
    try:
        for app in APPS:
            r = http.get(f"/applications/{app}/functions", timeout=30)
            r.raise_for_status()
            for row in r.json()["functions"]:
                for container in row["containers"]:
                    if container["id"] is None:
                        starting += 1
                    else:
                        ids.add(container["id"])
    except httpx.HTTPError:
        return None
    return len(ids) + starting


def take_sample(
    server: ServerProcess, http: httpx.Client, db: Database, load: Load, t: float
) -> dict[str, Any]:
    pid = server.pid
    processes = [p for p in server.container_pids() if Path(f"/proc/{p}").exists()]
    sample: dict[str, Any] = {
        "t_s": round(t, 1),
        "rss_kb": rss_kb(pid),
        "fds": proc_count(pid, "fd"),
        "threads": proc_count(pid, "task"),
        "containers": containers(http),
        "container_processes": len(processes),
        "containers_rss_kb": sum(rss_kb(p) or 0 for p in processes),
        "blob_bytes": folder_bytes(server.data_dir / "blobs"),
        "load_average": load_average()[:1],
        **load.stats.snapshot(),
    }
    try:
        sample.update(db.measure())
    except Exception as err:  # the sample records it; the verdict sees the gap
        sample.update(db_bytes=None, requests_rows=None, calls_rows=None, db_error=str(err))
    return sample


# -- the verdict ------------------------------------------------------------------------------


def warmup_seconds(config: Config) -> float:
    seconds = config.minutes * 60
    least = config.retention_seconds + 2 * config.cleanup_seconds
    return min(max(config.warmup_fraction * seconds, least), seconds / 2)


def _values(samples: list[dict[str, Any]], key: str) -> list[float]:
    return [s[key] for s in samples if s.get(key) is not None]


def rows_limit(config: Config) -> float:
    """The most requests retention leaves in the journal: those of the last retention period
    and of up to two cleanup intervals more (a pass runs every interval), 10 % over, plus
    those in flight."""
    seconds = config.retention_seconds + 2 * config.cleanup_seconds
    return config.rate * seconds * 1.1 + 2 * config.clients


def verdict(samples: list[dict[str, Any]], load: dict[str, Any], warmup_s: float,
            max_rows: float, server_alive: bool = True) -> dict[str, Any]:  # fmt: skip
    """The checks over the samples taken after ``warmup_s``; ``passed`` when all hold."""
    after = [s for s in samples if s["t_s"] >= warmup_s]
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append({"name": name, "passed": bool(ok), "detail": detail})

    if len(after) < 6:
        check("samples", False, f"{len(after)} samples after the warm-up; 6 at least are needed")
        return {"passed": False, "warmup_s": warmup_s, "checks": checks}
    third = max(1, len(after) // 3)
    first, last = after[:third], after[-third:]

    rss = _values(after, "rss_kb")
    spread = max(rss) / min(rss) - 1 if rss and min(rss) > 0 else float("inf")
    check(
        "memory flat",
        spread <= MEMORY_SPREAD,
        f"server RSS {min(rss) / 1024:.1f}-{max(rss) / 1024:.1f} MiB after the warm-up: "
        f"{spread * 100:.1f} % apart (at most {MEMORY_SPREAD * 100:.0f} %); median "
        f"{statistics.median(_values(first, 'rss_kb')) / 1024:.1f} MiB in the first third, "
        f"{statistics.median(_values(last, 'rss_kb')) / 1024:.1f} MiB in the last",
    )
    for key, label, slack in (
        ("fds", "descriptors", FD_SLACK),
        ("threads", "threads", THREAD_SLACK),
        ("containers", "containers", CONTAINER_SLACK),
        ("container_processes", "container processes", CONTAINER_SLACK),
    ):
        a, b = _values(first, key), _values(last, key)
        ok = bool(a) and bool(b) and max(b) <= max(a) + slack
        check(
            f"no {label} growth",
            ok,
            f"{label}: at most {max(a, default='?')} in the first third, "
            f"{max(b, default='?')} in the last (tolerance +{slack})",
        )
    a, b = _values(first, "db_bytes"), _values(last, "db_bytes")
    limit = max(a, default=0) * (1 + DB_GROWTH) + DB_SLACK
    check(
        "database bounded",
        bool(a) and bool(b) and len(b) == len(last) and max(b) <= limit,
        f"database at most {max(a, default=0) / 2**20:.2f} MiB in the first third, "
        f"{max(b, default=0) / 2**20:.2f} MiB in the last (limit {limit / 2**20:.2f} MiB)",
    )
    rows = _values(after, "requests_rows")
    check(
        "retention bounds the rows",
        len(rows) == len(after) and max(rows) <= max_rows and max(rows) < load["sent"],
        f"requests in the journal after the warm-up: {min(rows, default='?')} to "
        f"{max(rows, default='?')} (limit {max_rows:.0f}: the requests of retention + two "
        f"cleanup intervals); {load['sent']} sent",
    )
    by_kind = ", ".join(f"{k} {v['sent']}" for k, v in load["by_kind"].items())
    check(
        "every answer as expected",
        load["errors"] == 0 and load["sent"] > 0 and server_alive,
        f"{load['sent']} requests ({by_kind}), {load['errors']} unexpected answers"
        + ("" if server_alive else "; the server exited")
        + (f"; first: {load['first_errors'][:3]}" if load["first_errors"] else ""),
    )
    return {"passed": all(c["passed"] for c in checks), "warmup_s": warmup_s, "checks": checks}


# -- a run ------------------------------------------------------------------------------------


@contextlib.contextmanager
def database_url(config: Config) -> Iterator[str | None]:
    """None for SQLite; else a fresh PostgreSQL database (throw-away server unless given)."""
    if config.database == "sqlite":
        yield None
        return
    if config.database_url is not None:
        from benchmarks.replicas import databases

        with databases(config.database_url) as make:
            yield make()
        return
    from tests.postgres import PostgresServer, missing

    why = missing()
    if why is not None:
        raise SystemExit(f"no PostgreSQL to soak on: {why} (or pass --database-url URL)")
    server = PostgresServer().start()
    try:
        # Autovacuum wakes every minute by default: a short soak would end before it reuses
        # the space of the rows retention deletes. Every cleanup interval instead.
        import psycopg

        naptime = max(1, min(60, round(config.cleanup_seconds)))
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET autovacuum_naptime = {naptime}")
            conn.execute("SELECT pg_reload_conf()")
        yield server.create_database()
    finally:
        server.stop()


def run(
    config: Config,
    data_root: Path,
    log: Callable[[str], None] = print,
    database: str | None = None,
) -> dict[str, Any]:
    """One soak; returns the results (samples, load, verdict). ``database``: an empty
    PostgreSQL database to use as it is (else one is made as ``config`` says)."""
    work = Path(tempfile.mkdtemp(prefix=f"cove-soak-{config.database}-", dir=data_root))
    results: dict[str, Any] = {
        "config": config.to_dict(),
        "machine": machine_facts(work),
        "warmup_s": warmup_seconds(config),
    }
    given = contextlib.nullcontext(database) if database is not None else None
    with given or database_url(config) as url:
        env: dict[str, str | None] = {
            "COVE_CLEANUP_INTERVAL": str(config.cleanup_seconds),
            "COVE_BLOB_GRACE": str(config.retention_seconds),
            "COVE_RETENTION_DAYS": None,
            # SQLite in the data folder unless PostgreSQL: never an inherited database
            "COVE_DATABASE_URL": url,
        }
        server = ServerProcess(
            work / "data", env=env,
            args=("--retention-days", repr(config.retention_seconds / 86400)),
        )  # fmt: skip
        db = Database(server.data_dir / "cove.db") if url is None else Database(url=url)
        samples: list[dict[str, Any]] = []
        results["samples"] = samples
        with server, httpx.Client(base_url=server.url, timeout=60) as http:
            log(f"soak: server on {server.url}, {config.database}, data in {server.data_dir}")
            server.start()
            server.deploy(APPS_FILE)
            duration = config.minutes * 60
            log(
                f"soak: {config.minutes:g} min at {config.rate:g} requests/s from "
                f"{config.clients} clients; a sample every {config.sample_seconds:g} s; "
                f"retention {config.retention_seconds:g} s, cleanup every "
                f"{config.cleanup_seconds:g} s; warm-up {results['warmup_s']:g} s"
            )
            began = time.monotonic()
            with Load(server.url, config) as load:
                for k in itertools.count(1):
                    t = time.monotonic() - began
                    sample = take_sample(server, http, db, load, t)
                    samples.append(sample)
                    log(_sample_line(sample))
                    if server.process is None or server.process.poll() is not None:
                        break
                    due = began + min(k * config.sample_seconds, duration)
                    if t >= duration:
                        break
                    time.sleep(max(0.0, due - time.monotonic()))
            alive = server.process is not None and server.process.poll() is None
            results["load"] = load.stats.summary()
            results["duration_s"] = round(time.monotonic() - began, 1)
            results["verdict"] = verdict(
                samples, results["load"], results["warmup_s"], rows_limit(config), alive
            )
    return results


def _sample_line(s: dict[str, Any]) -> str:
    def mib(v: int | None) -> str:
        return "?" if v is None else f"{v / 2**20:.1f}"

    rss = None if s["rss_kb"] is None else s["rss_kb"] * 1024
    return (
        f"  t={s['t_s']:>6.0f}s rss={mib(rss)} MiB fds={s['fds']} threads={s['threads']} "
        f"containers={s['containers']}/{s['container_processes']} db={mib(s['db_bytes'])} MiB "
        f"rows={s['requests_rows']}/{s['calls_rows']} blobs={mib(s['blob_bytes'])} MiB "
        f"sent={s['sent']} errors={s['errors']} load={s['load_average']}"
    )


# -- the report, the plot and the published section -------------------------------------------


def report(results: dict[str, Any]) -> str:
    config, v = results["config"], results["verdict"]
    lines = [
        f"Soak on {config['database']}: {results['duration_s'] / 60:.1f} min, "
        f"{results['load']['sent']} requests, warm-up {v['warmup_s']:g} s: "
        + ("PASSED" if v["passed"] else "FAILED")
    ]
    for c in v["checks"]:
        lines.append(f"  [{'ok' if c['passed'] else 'FAIL'}] {c['name']}: {c['detail']}")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> Path | None:
    """Write the PNG; None (and nothing written) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    samples = results["samples"]
    minutes = [s["t_s"] / 60 for s in samples]
    fig, axes = plt.subplots(2, 2, figsize=(9, 6), dpi=110, sharex=True)
    panels: list[tuple[Any, list[tuple[str, str, float]], str]] = [
        (axes[0][0], [("rss_kb", "server RSS", 1 / 1024),
                      ("containers_rss_kb", "containers' RSS", 1 / 1024)], "MiB"),
        (axes[0][1], [("fds", "open descriptors", 1), ("threads", "threads", 1)], "count"),
        (axes[1][0], [("containers", "live containers", 1),
                      ("container_processes", "container processes", 1)], "count"),
        (axes[1][1], [("db_bytes", "database", 2**-20), ("blob_bytes", "blobs", 2**-20)], "MiB"),
    ]  # fmt: skip
    for ax, lines, unit in panels:
        for key, label, scale in lines:
            points = [(m, s[key] * scale) for m, s in zip(minutes, samples, strict=True)
                      if s.get(key) is not None]  # fmt: skip
            ax.plot([p[0] for p in points], [p[1] for p in points], "-", label=label)
        ax.axvline(results["verdict"]["warmup_s"] / 60, color="grey", linestyle=":", linewidth=1)
        ax.set_ylabel(unit)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    for ax in axes[1]:
        ax.set_xlabel("minutes (dotted: end of the warm-up)")
    config, machine = results["config"], results["machine"]
    fig.suptitle(
        f"Cove soak on {config['database']}: {results['duration_s'] / 60:.0f} min, "
        f"{results['load']['sent']} requests at {config['rate']:g}/s, retention "
        f"{config['retention_seconds']:g} s\n{machine['date']}, {machine['cores']} cores "
        f"{machine['cpu']}",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def section(results: dict[str, Any], picture: Path | None) -> str:
    """The generated part of docs/benchmarks.md's Soak section."""
    config, machine, load = results["config"], results["machine"], results["load"]
    loads = [s["load_average"][0] for s in results["samples"] if s.get("load_average")]
    after = [s for s in results["samples"] if s["t_s"] >= results["verdict"]["warmup_s"]]

    def span(key: str, scale: float = 1, fmt: str = "{:.0f}") -> str:
        values = [s[key] * scale for s in after if s.get(key) is not None]
        if not values:
            return "-"
        return fmt.format(min(values)) + " to " + fmt.format(max(values))

    lines = [
        f"Measured {machine['date']} on {machine['cores']} cores ({machine['cpu']}, "
        f"{machine['python']}, {config['database']}): **{results['duration_s'] / 60:.1f} "
        f"minutes**, {load['sent']} requests at {config['rate']:g}/s from {config['clients']} "
        f"clients, retention {config['retention_seconds']:g} s with a cleanup every "
        f"{config['cleanup_seconds']:g} s, a sample every {config['sample_seconds']:g} s, "
        f"warm-up {results['verdict']['warmup_s']:g} s. Load average (1 min) "
        f"{min(loads, default=0):.1f} to {max(loads, default=0):.1f} during the run (the "
        "machine was shared). Verdict: **"
        + ("passed" if results["verdict"]["passed"] else "FAILED")
        + "**.",
        "",
        "| Check | Result |",
        "|---|---|",
    ]
    for c in results["verdict"]["checks"]:
        lines.append(f"| {c['name']} | {'✅' if c['passed'] else '❌'} {c['detail']} |")
    lines += [
        "",
        "| After the warm-up | Range |",
        "|---|---|",
        f"| server RSS (MiB) | {span('rss_kb', 1 / 1024, '{:.1f}')} |",
        f"| open descriptors | {span('fds')} |",
        f"| threads | {span('threads')} |",
        f"| live containers | {span('containers')} |",
        f"| containers' RSS (MiB) | {span('containers_rss_kb', 1 / 1024, '{:.0f}')} |",
        f"| database (MiB) | {span('db_bytes', 2**-20, '{:.2f}')} |",
        f"| requests in the journal | {span('requests_rows')} |",
        f"| blobs (MiB) | {span('blob_bytes', 2**-20, '{:.2f}')} |",
        "",
        "| Kind | Requests | Unexpected | p50 | max |",
        "|---|---|---|---|---|",
    ]
    for kind, k in load["by_kind"].items():
        lines.append(f"| {kind} | {k['sent']} | {k['errors']} | {k['p50_ms']} ms "
                     f"| {k['max_ms']} ms |")  # fmt: skip
    if picture is not None:
        lines += ["", f"![Soak: memory, descriptors, containers, database]({picture.name})"]
    return "\n".join(lines) + "\n"


def publish(results: dict[str, Any], picture: Path | None, doc: Path = DOC) -> None:
    text = doc.read_text()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{doc} has no {BEGIN} ... {END} block")
    doc.write_text(text[: start + len(BEGIN)] + "\n" + section(results, picture) + text[end:])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.soak",
        description="A steady mixed load on a cove server for N minutes; samples and a verdict.",
    )
    d = Config(minutes=0)
    parser.add_argument("--minutes", type=float, help="how long the load runs")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--database-url", help="with --database postgresql: a server to create a database on "
        "(default: a throw-away one started with initdb and pg_ctl)",
    )  # fmt: skip
    parser.add_argument("--sample-seconds", type=float, default=d.sample_seconds)
    parser.add_argument(
        "--retention-seconds", type=float, default=d.retention_seconds,
        help="finished requests older than this are removed (cove server --retention-days; "
        "at least 9 s)",
    )  # fmt: skip
    parser.add_argument("--cleanup-seconds", type=float, default=d.cleanup_seconds,
                        help="COVE_CLEANUP_INTERVAL")  # fmt: skip
    parser.add_argument("--warmup-fraction", type=float, default=d.warmup_fraction)
    parser.add_argument("--clients", type=int, default=d.clients)
    parser.add_argument("--rate", type=float, default=d.rate, help="requests per second")
    parser.add_argument("--map-size", type=int, default=d.map_size)
    parser.add_argument("--file-kib", type=int, default=d.file_kib)
    parser.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="where the server's data folder goes (default: the temp folder)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="default: benchmarks/results/soak-<database>.json; the plot beside",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        default=None,
        metavar="PATH",
        help="run nothing: judge, plot (and --publish) a saved run again",
    )
    parser.add_argument(
        "--publish",
        action="store_true",
        help="write docs/soak.png and the Soak section of docs/benchmarks.md",
    )
    return parser.parse_args(argv)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json is not None:
        return finish(rejudge(json.loads(args.from_json.read_text())), args.from_json, args)
    if args.minutes is None:
        print("--minutes is required (or --from-json)", file=sys.stderr)
        return 2
    if args.retention_seconds < 9:
        print("--retention-seconds must be at least 9", file=sys.stderr)
        return 2
    config = Config(
        minutes=args.minutes, database=args.database, database_url=args.database_url,
        sample_seconds=args.sample_seconds, retention_seconds=args.retention_seconds,
        cleanup_seconds=args.cleanup_seconds, warmup_fraction=args.warmup_fraction,
        clients=args.clients, rate=args.rate, map_size=args.map_size, file_kib=args.file_kib,
    )  # fmt: skip
    data_root = args.data_root or Path(tempfile.gettempdir())
    data_root.mkdir(parents=True, exist_ok=True)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        results = run(config, data_root, log)
    except (RuntimeError, OSError, httpx.HTTPError) as err:
        print(f"soak failed: {err}", file=sys.stderr)
        return 1
    out = args.json or RESULTS / f"soak-{config.database}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    return finish(results, out, args)


def rejudge(results: dict[str, Any]) -> dict[str, Any]:
    """A saved run's verdict again, by this version's checks."""
    config = Config(**results["config"])
    results["warmup_s"] = warmup_seconds(config)
    alive = not any("server exited" in c["detail"] for c in results["verdict"]["checks"])
    results["verdict"] = verdict(
        results["samples"], results["load"], results["warmup_s"], rows_limit(config), alive
    )
    return results


def finish(results: dict[str, Any], out: Path, args: argparse.Namespace) -> int:
    """The report, the plot beside ``out`` and, with ``--publish``, the docs."""
    picture = plot(results, out.with_suffix(".png"))
    print(report(results))
    print(f"results: {out}" + (f", plot: {picture}" if picture else ""))
    if args.publish:
        published = plot(results, PUBLISHED_PLOT)
        publish(results, published)
        print(f"published: {DOC} (Soak), {PUBLISHED_PLOT}")
    return 0 if results["verdict"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
