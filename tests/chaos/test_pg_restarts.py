"""PostgreSQL restarts under load: two replicas on one database that restarts every 5-20 s.

Two ``cove server`` replicas share a throw-away PostgreSQL server of this test's own (so its
restarts touch no other test). A client submits REQUESTS requests of the chaos suite's
fan-out workload (tests/chaos/workload.py: state, a map of FAN_OUT calls each making a
blocking call, injected exceptions) with an ``Idempotency-Key`` each, alternating between
the replicas, while a thread restarts the database with ``pg_ctl restart -m immediate`` at
random moments. Then, with no Cove process restarted:

- every request reached a final status, succeeded, with the right output;
- one request per key, the listing holds exactly these requests (none lost or duplicated);
- no call whose output the journal recorded ran its body again (the side-effect log);
- every answer to a POST was 200 or 503 with ``Retry-After`` (never a 500 or a dropped
  connection);
- with the database held down, a new invocation on each replica answers 503
  ``database_unavailable`` with ``Retry-After`` within a bounded time, and once it is back
  both replicas accept and run requests again by themselves.

The schedule comes from a seeded ``random.Random``: the seed is printed and can be set with
``COVE_CHAOS_SEED`` (timing still varies).
"""

from __future__ import annotations

import collections
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chaos.test_chaos import (
    _check_effects,
    _effects,
    _journal_tokens,
    _list_requests,
    expected_total,
)
from tests.conftest import BACKEND, ServerProcess
from tests.postgres import PostgresServer
from tests.postgres import missing as postgres_missing

pytestmark = pytest.mark.slow

WORKLOAD = Path(__file__).with_name("workload.py")
APP = "chaos_job"
REQUESTS = 200
FAN_OUT = 5
SUBMIT_SPAN = 45.0  # seconds over which the requests are submitted
RESTART_EVERY = (5.0, 20.0)
DRAIN_DEADLINE = 120.0
#: Longer than any outage here, so the replicas keep their leases through the restarts.
LEASE = "15"
#: How long a refused invocation may take while the database is down (the engine waits
#: RECORD_WAIT_SECONDS for it before answering 503), with room for a busy machine.
REFUSAL_DEADLINE = 20.0


def _replica(factory: type[ServerProcess], root: Path, name: str, url: str) -> ServerProcess:
    env = {
        "COVE_DATABASE_URL": url,
        "COVE_BLOB_URL": f"file://{root / 'blobs'}",
        "COVE_LEASE_SECONDS": LEASE,
    }
    return factory(root / name, env=env).start()


def _post(
    client: httpx.Client, key: str, body: dict[str, Any], codes: collections.Counter[str]
) -> str | None:
    """One POST; counts its answer by code. Returns the request id when accepted."""
    try:
        r = client.post(f"/applications/{APP}", json=body, headers={"Idempotency-Key": key})
    except httpx.TransportError as exc:
        codes[f"transport: {type(exc).__name__}"] += 1
        return None
    if r.status_code == 200:
        codes["200"] += 1
        return str(r.json()["request_id"])
    try:
        code = r.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = "?"
    retry = "" if r.headers.get("retry-after") else " without Retry-After"
    codes[f"{r.status_code} {code}{retry}"] += 1
    return None


def _status(client: httpx.Client, rid: str) -> dict[str, Any]:
    r = client.get(f"/applications/{APP}/requests/{rid}")
    r.raise_for_status()
    data: dict[str, Any] = r.json()
    return data


@pytest.mark.timeout(600)
def test_postgres_restarts_under_load(
    tmp_path: Path,
    server_factory: type[ServerProcess],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if BACKEND != "postgresql":
        pytest.skip("PostgreSQL only: runs in .ci/run's COVE_TEST_DATABASE=postgresql pass")
    why = postgres_missing()
    if why is not None:
        pytest.skip(why)

    def say(line: str) -> None:  # shown in CI's output, which captures the rest
        with capsys.disabled():
            print(line, flush=True)

    seed = int(os.environ.get("COVE_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    say(f"\npg restarts seed: {seed} (replay with COVE_CHAOS_SEED={seed})")
    database = PostgresServer().start()
    try:
        url = database.create_database()
        monkeypatch.setenv("COVE_DATABASE_URL", url)  # the journal check reads it
        _run(tmp_path, server_factory, database, url, seed, say)
    finally:
        database.stop()


def _run(
    root: Path,
    factory: type[ServerProcess],
    database: PostgresServer,
    url: str,
    seed: int,
    say: Callable[[str], None],
) -> None:
    began = time.monotonic()
    work = root / "work"
    work.mkdir()
    log = work / "effects.log"
    replicas = [_replica(factory, root, name, url) for name in ("a", "b")]
    pids = [r.process.pid for r in replicas if r.process is not None]
    replicas[0].deploy(WORKLOAD)

    keys = [f"pg-{i}-{uuid.uuid4().hex}" for i in range(REQUESTS)]
    body = {"log": str(log), "n": FAN_OUT}
    accepted: dict[str, set[str]] = collections.defaultdict(set)
    codes: collections.Counter[str] = collections.Counter()
    restarts: list[float] = []
    submitted = threading.Event()
    stop_restarts = threading.Event()
    errors: list[BaseException] = []

    def submitter() -> None:
        pace = random.Random(f"{seed}-submit")
        clients = [httpx.Client(base_url=r.url, timeout=60) for r in replicas]
        try:
            t0 = time.monotonic()
            for i, key in enumerate(keys):
                due = t0 + i * SUBMIT_SPAN / REQUESTS
                if due > time.monotonic():
                    time.sleep(due - time.monotonic())  # pacing the load over the restarts
                deadline = time.monotonic() + 120
                turn = pace.randrange(2)
                while True:
                    rid = _post(clients[turn % 2], key, body, codes)
                    if rid is not None:
                        accepted[key].add(rid)
                        break
                    assert time.monotonic() < deadline, f"{key} not accepted in 120 s: {codes}"
                    turn += 1
                    time.sleep(0.2)  # refused (the database is restarting): again, later
        except BaseException as exc:
            errors.append(exc)
        finally:
            for c in clients:
                c.close()
            submitted.set()

    def restarter() -> None:
        rng = random.Random(f"{seed}-restart")
        try:
            while not stop_restarts.wait(rng.uniform(*RESTART_EVERY)):
                t = time.monotonic()
                database.restart()
                restarts.append(time.monotonic() - t)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=submitter), threading.Thread(target=restarter)]
    for t in threads:
        t.start()
    submitted.wait(SUBMIT_SPAN + 300)
    # Restarts go on a while after the last request was accepted, so they meet running calls.
    stop_restarts.wait(random.Random(f"{seed}-tail").uniform(5.0, 10.0))
    stop_restarts.set()
    for t in threads:
        t.join(120)
    assert not errors, errors
    load_done = time.monotonic()

    # -- every request reaches a final status, with the right output -------------------------
    request_ids = {key: next(iter(ids)) for key, ids in accepted.items()}
    outputs: dict[str, dict[str, Any]] = {}
    unfinished: list[tuple[str, str]] = []
    deadline = time.monotonic() + DRAIN_DEADLINE
    clients = [r.client() for r in replicas]
    try:
        for i, rid in enumerate(request_ids.values()):
            client = clients[i % 2]  # any replica answers for any request
            while True:
                wait = max(0.0, min(20.0, deadline - time.monotonic()))
                r = client.get(f"/applications/{APP}/requests/{rid}/output", params={"wait": wait})
                if r.status_code == 200:
                    outputs[rid] = r.json()
                    break
                if r.status_code != 202 or wait == 0:
                    unfinished.append((rid, str(_status(client, rid))[:1500]))
                    break
        drained = time.monotonic()
        statuses = collections.Counter(
            _status(clients[0], rid)["status"] for rid in request_ids.values()
        )
        listed = _list_requests(clients[1])
        takeovers = sum(c.get("/status").json()["replica"]["takeovers"] for c in clients)
    finally:
        for c in clients:
            c.close()

    # -- the journal and the side-effect log -------------------------------------------------
    calls = _journal_tokens(root, set(request_ids.values()))
    violations, reruns = _check_effects(calls, _effects(log))
    reconnects = sum(
        (root / name / "server.log").read_text().count("the database is reachable again")
        for name in ("a", "b")
    )
    say(
        f"pg restarts: requests {len(request_ids)}, restarts {len(restarts)} "
        f"(each {', '.join(f'{s:.1f}' for s in restarts)} s), writer reconnects {reconnects}, "
        f"takeovers {takeovers}, POST answers by code {dict(codes)}, final statuses "
        f"{dict(statuses)}, calls {len(calls)}, runs repeated before a record {reruns}, "
        f"violations {len(violations)}; load {load_done - began:.1f} s, "
        f"drained {drained - load_done:.1f} s after"
    )

    assert len(restarts) >= 3, f"only {len(restarts)} restarts: the load ended too soon"
    assert len(request_ids) == REQUESTS
    split = {key: ids for key, ids in accepted.items() if len(ids) != 1}
    assert not split, f"a key named different requests: {split}"
    refused = {c: n for c, n in codes.items() if c != "200" and not c.startswith("503 ")}
    assert not refused, f"answers other than 200 or 503 with Retry-After: {dict(codes)}"
    assert not [c for c in codes if "without Retry-After" in c], dict(codes)
    assert not unfinished, f"{len(unfinished)} request(s) did not succeed: {unfinished[:5]}"
    wrong = [
        (rid, out)
        for rid, out in outputs.items()
        if out.get("total") != expected_total(FAN_OUT)
        or out.get("state") != {"n": FAN_OUT, "request": rid}
        or len(out.get("tokens", [])) != FAN_OUT
    ]
    assert not wrong, f"{len(wrong)} wrong output(s): {wrong[:5]}"
    assert sorted(listed) == sorted(request_ids.values()), "requests lost or duplicated"
    per_request = collections.Counter(rid for rid, _ in calls)
    assert all(per_request[rid] == 2 * FAN_OUT + 2 for rid in request_ids.values())
    assert all(c.status == "succeeded" for c in calls.values())
    assert not violations, "\n".join(violations[:20])

    # -- the database held down: refused with 503, then both replicas go on by themselves -----
    database.stop_now()
    try:
        for replica in replicas:
            with replica.client() as client:
                t = time.monotonic()
                r = client.post(f"/applications/{APP}", json=body, timeout=REFUSAL_DEADLINE + 10)
                took = time.monotonic() - t
            say(f"pg restarts: database down, POST to {replica.url}: {r.status_code}, {took:.1f} s")
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "database_unavailable", r.text
            assert int(r.headers["retry-after"]) > 0
            assert took < REFUSAL_DEADLINE
    finally:
        database.start_again()
    for replica in replicas:
        with replica.client() as client:
            deadline = time.monotonic() + 60
            while True:
                r = client.post(f"/applications/{APP}", json=body)
                if r.status_code == 200:
                    break
                assert r.status_code == 503, r.text
                assert time.monotonic() < deadline, "the replica did not get the database back"
                time.sleep(float(r.headers.get("retry-after", "1")))
            rid = r.json()["request_id"]
            out = client.get(f"/applications/{APP}/requests/{rid}/output", params={"wait": 60})
            assert out.status_code == 200, out.text
            assert out.json()["total"] == expected_total(FAN_OUT)
    # Served throughout by the same processes: no replica was restarted.
    assert [r.process.pid for r in replicas if r.process is not None] == pids
    assert all(r.process is not None and r.process.poll() is None for r in replicas)
    say(f"pg restarts: total {time.monotonic() - began:.1f} s")
