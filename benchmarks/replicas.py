"""``python -m benchmarks.replicas``: requests/s and function calls/s with 1 and 2 ``cove server``
replicas on one PostgreSQL database (docs/postgres.md).

Each round starts the replicas on a fresh database (a throw-away PostgreSQL server unless
``--database`` names one; its databases are created there), deploys ``benchmarks/apps.py``
the applications below through the first, and sends requests round-robin to every replica
from a pool of client threads, each waiting for its output (``?wait=``):

- requests/s: ``replica_noop`` requests (a request with no child call);
- calls/s: ``replica_map(n)`` requests (n child calls plus the entry call each).

Not part of the default benchmark suite; the figures in docs/postgres.md come from it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from benchmarks.machine import machine_facts
from benchmarks.server import ServerProcess

RESULT = Path(__file__).parent / "results" / "replicas.json"
APPS = """
from cove import application, function


@application()
@function()
def replica_noop() -> int:
    return 0


@function()
def replica_inc(x: int) -> int:
    return x + 1


@application()
@function()
def replica_map(n: int) -> int:
    return sum(replica_inc.map(range(n)))
"""


@contextmanager
def databases(url: str | None) -> Iterator[Any]:
    """Yields a function that makes a fresh database and returns its URL."""
    if url is not None:
        import psycopg

        def make() -> str:
            name = f"bench_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            return url.rsplit("/", 1)[0] + "/" + name

        yield make
        return
    from tests.postgres import PostgresServer, missing

    why = missing()
    if why is not None:
        raise SystemExit(f"no PostgreSQL to benchmark on: {why} (or pass --database URL)")
    server = PostgresServer().start()
    try:
        yield server.create_database
    finally:
        server.stop()


@contextmanager
def replicas(count: int, database: str, root: Path) -> Iterator[list[ServerProcess]]:
    saved = {k: os.environ.get(k) for k in ("COVE_DATABASE_URL", "COVE_BLOB_URL")}
    os.environ["COVE_DATABASE_URL"] = database
    os.environ["COVE_BLOB_URL"] = f"file://{root / 'blobs'}"
    servers = [ServerProcess(root / f"replica{i}") for i in range(count)]
    try:
        for server in servers:
            server.start()
        code = root / "replica_apps.py"
        code.write_text(APPS)
        servers[0].deploy(code)
        for server in servers:  # every replica knows the deploy before the clock starts
            httpx.post(f"{server.url}/applications/replica_noop", params={"wait": 60}, json={})
        yield servers
    finally:
        for server in servers:
            server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def drive(servers: list[ServerProcess], app: str, body: Any, requests: int, clients: int) -> float:
    """Send ``requests`` requests round-robin over the replicas; returns the seconds taken."""
    http = [httpx.Client(base_url=s.url, timeout=300) for s in servers]

    def one(i: int) -> None:
        r = http[i % len(http)].post(f"/applications/{app}", params={"wait": 300}, json=body)
        if r.status_code != 200:
            raise RuntimeError(f"{app}: {r.status_code} {r.text[:300]}")

    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(requests)))
    took = time.perf_counter() - began
    for client in http:
        client.close()
    return took


def measure(count: int, database: str, args: argparse.Namespace) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="cove-replicas-") as tmp,
        replicas(count, database, Path(tmp)) as servers,
    ):
        drive(servers, "replica_noop", {}, args.clients, args.clients)  # warm containers
        noop = drive(servers, "replica_noop", {}, args.requests, args.clients)
        n = args.fanout
        maps = drive(servers, "replica_map", n, args.map_requests, args.clients)
    return {
        "replicas": count,
        "requests_per_s": round(args.requests / noop, 1),
        "calls_per_s": round(args.map_requests * (n + 1) / maps, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replicas", description=__doc__)
    parser.add_argument("--database", help="a PostgreSQL server URL to create databases on")
    parser.add_argument("--requests", type=int, default=400, help="replica_noop requests")
    parser.add_argument("--map-requests", type=int, default=40, help="replica_map requests")
    parser.add_argument("--fanout", type=int, default=50, help="child calls per replica_map")
    parser.add_argument("--clients", type=int, default=16, help="client threads")
    parser.add_argument("--json", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    rows = []
    with databases(args.database) as make:
        for count in (1, 2):
            rows.append(measure(count, make(), args))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| replicas | requests/s | calls/s |\n|---|---|---|")
    for row in rows:
        print(f"| {row['replicas']} | {row['requests_per_s']} | {row['calls_per_s']} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: getattr(args, k) for k in ("requests", "map_requests", "fanout", "clients")}
    result = {"machine": machine_facts(Path(tempfile.gettempdir())), "settings": settings}
    args.json.write_text(json.dumps({**result, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
