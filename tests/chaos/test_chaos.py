"""Fault injection: 200 requests while the server and its containers are SIGKILLed.

A client submits requests of ``tests/chaos/workload.py`` (request state, a map, nested
blocking calls, injected exceptions) with an ``Idempotency-Key`` each, retrying through
outages, while a chaos thread SIGKILLs the server (restarting it on the same data folder
and port) and random container process groups. Then, with the server left up, every request
must finish with the right output, the server must hold exactly one request per key, and
the side-effect log must show that no call whose output the journal recorded ran its body
again after the recorded run.

The schedule comes from a seeded ``random.Random``; the seed is printed and can be set
with ``COVE_CHAOS_SEED`` to replay a run's schedule (timing still varies).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import pickle
import random
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy

from cove.engine.settings import Settings
from cove.store.database import postgres_url
from tests.conftest import RUNTIME, ServerProcess, free_port

pytestmark = pytest.mark.slow

WORKLOAD = Path(__file__).with_name("workload.py")
APP = "chaos_job"
REQUESTS = 200
SERVER_KILLS = 5
CONTAINER_KILLS = 20
# The chaos runs in SERVER_KILLS + 1 epochs of about EPOCH_SECONDS (each after a restart, so
# the pools warm up again), with KILLS_PER_EPOCH container kills planned in each. Submission
# is paced to span about the same time, so kills land while requests arrive and run.
EPOCH_SECONDS = 7.0
KILLS_PER_EPOCH = 4
SUBMIT_SPAN = 40.0
SUBMIT_DEADLINE = 150.0
DRAIN_DEADLINE = 90.0
# The server retries a call lost with its container this many times (Settings.machine_retries,
# default 3) and then fails it: the chaos thread never kills more containers of one function
# than that between two server restarts, so no call can exhaust that budget by design.
MACHINE_RETRIES = 3
# Containers are spawned workers or children forked from a template (which keep its cmdline).
WORKER_MARKERS = (b"cove.runtime.worker", b"cove.runtime.template")
# Containers are killed whether they serve calls or are still starting: one killed while it
# starts is a machine failure, retried on a fresh container (test_container_killed_while_starting).
KILL_STARTING_CONTAINERS = True


def n_of(index: int) -> int:
    return 4 + index % 3


def expected_total(n: int) -> int:
    """``chaos_job``'s ``total``: the sum over items of ``leaf`` (x*x) plus ``leaf_parent`` (x)."""
    return sum(i * i + i for i in range(n))


@dataclass
class Stats:
    server_kills: int = 0
    container_kills: int = 0
    container_kills_by_function: collections.Counter[str] = field(
        default_factory=collections.Counter
    )
    restart_seconds: list[float] = field(default_factory=list)


class Cluster:
    """The server under test: one data folder and port, restarted after each SIGKILL."""

    def __init__(self, factory: type[ServerProcess], data: Path) -> None:
        self.factory = factory
        self.data = data
        self.port = free_port()
        self.server = factory(data, port=self.port).start()
        self.url = self.server.url

    def crash_and_restart(self, downtime: float) -> float:
        self.server.kill()
        time.sleep(downtime)
        started = time.monotonic()
        self.server = self.factory(self.data, port=self.port).start(timeout=60)
        return time.monotonic() - started


# -- containers -------------------------------------------------------------------------
def _is_worker(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        return any(marker in cmdline for marker in WORKER_MARKERS)
    except OSError:
        return False


def _function_of(container_id: str) -> str | None:
    """``chaos_job-v1-leaf_parent-7`` -> ``leaf_parent`` (ids: app-v<version>-function-n)."""
    prefix = f"{APP}-v"
    if not container_id.startswith(prefix):
        return None
    rest = container_id[len(prefix) :].split("-", 1)
    if len(rest) != 2 or "-" not in rest[1]:
        return None
    return rest[1].rsplit("-", 1)[0]


def _has_served(pid: int) -> bool:
    """Whether the worker has run a call (its call threads exist), so it was ready."""
    try:
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


def live_containers(data: Path, serving_only: bool = False) -> list[tuple[int, str]]:
    """(pid, function) of the worker processes recorded under ``<data>/containers``; with
    ``serving_only``, only those that have run a call (not still starting)."""
    found = []
    records = data / "containers"
    if not records.exists():
        return found
    for record in records.iterdir():
        try:
            pid = int(record.name)
            function = _function_of(record.read_text().strip())
        except (ValueError, OSError):
            continue
        if function is not None and _is_worker(pid) and (not serving_only or _has_served(pid)):
            found.append((pid, function))
    return sorted(found)


def ray_containers(url: str) -> list[tuple[int, str]]:
    """(pid, function) of the chaos app's containers as the server lists them: on the Ray
    runtime each is an actor's worker process (on this machine, the Ray head's node)."""
    try:
        rows = httpx.get(f"{url}/applications/{APP}/functions", timeout=5).json()["functions"]
    except (httpx.HTTPError, ValueError, KeyError):
        return []  # the server is down (the chaos killed it) or restarting
    found = []
    for row in rows:
        for container in row["containers"]:
            pid = container.get("pid")
            if pid and container["state"] != "stopped" and _is_ray_worker(pid):
                found.append((int(pid), str(row["function"])))
    return sorted(found)


def _is_ray_worker(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::")
    except OSError:
        return False


def kill_container(pid: int) -> None:
    """SIGKILL a container: a local one's process group, a Ray actor's worker process."""
    if RUNTIME == "ray":
        os.kill(pid, signal.SIGKILL)
    else:
        os.killpg(pid, signal.SIGKILL)


def kill_worker_groups(data: Path) -> None:
    """SIGKILL every recorded container process group (pids this test's servers started)."""
    records = data / "containers"
    if not records.exists():
        return
    for record in records.iterdir():
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            pid = int(record.name)
            if _is_worker(pid):
                os.killpg(pid, signal.SIGKILL)


# -- threads ----------------------------------------------------------------------------
class Worker(threading.Thread):
    """A thread whose exception ``join_all`` re-raises; it sets ``abort`` when it fails."""

    def __init__(self, name: str, target: Callable[[], None], abort: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self._abort = abort
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as exc:
            traceback.print_exc()
            self.error = exc
            self._abort.set()  # the other thread stops too


def join_all(threads: list[Worker], timeout: float) -> None:
    """Join the threads; re-raise the first failure (a thread that failed on its own before
    the one it stopped)."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            raise AssertionError(f"thread {thread.name} did not finish in {timeout:g} s")
    failed = [t for t in threads if t.error is not None]
    failed.sort(key=lambda t: isinstance(t.error, Stopped))
    if failed:
        raise failed[0].error  # type: ignore[misc]


class Stopped(AssertionError):
    """The other thread failed."""


def submit(
    client: httpx.Client,
    key: str,
    body: dict[str, Any],
    deadline: float,
    odd: list[str],
    abort: threading.Event | None = None,
) -> str:
    """POST with an Idempotency-Key, again with the same key through outages."""
    while True:
        if abort is not None and abort.is_set():
            raise Stopped("stopped: the chaos thread failed")
        try:
            r = client.post(f"/applications/{APP}", json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError:
            r = None
        if r is not None and r.status_code == 200:
            return str(r.json()["request_id"])
        if r is not None and r.status_code != 503:
            odd.append(f"POST {key}: {r.status_code} {r.text[:300]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"request {key} not accepted before the deadline")
        time.sleep(0.05)  # the server is down or restarting


@pytest.mark.timeout(SUBMIT_DEADLINE + DRAIN_DEADLINE + 180)
def test_chaos(tmp_path: Path, server_factory: type[ServerProcess]) -> None:
    seed = int(os.environ.get("COVE_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\nchaos seed: {seed} (replay with COVE_CHAOS_SEED={seed})")
    began = time.monotonic()

    data = tmp_path / "data"
    work = tmp_path / "work"
    work.mkdir()
    log = work / "effects.log"
    cluster = Cluster(server_factory, data)
    try:
        cluster.server.deploy(WORKLOAD)
        _run(cluster, seed, log, began)
    finally:
        cluster.server.kill()
        kill_worker_groups(data)


def _run(cluster: Cluster, seed: int, log: Path, began: float) -> None:
    rng = random.Random(f"{seed}-chaos")  # the chaos thread's; the submitter has its own
    data = cluster.data
    keys = [f"chaos-{i}-{uuid.uuid4().hex}" for i in range(REQUESTS)]
    bodies = {key: {"log": str(log), "n": n_of(i)} for i, key in enumerate(keys)}
    answers: dict[str, list[str]] = collections.defaultdict(list)
    odd: list[str] = []  # answers other than success or 503
    stats = Stats()
    submitted = threading.Event()
    abort = threading.Event()
    t0 = time.monotonic()

    def submitter() -> None:
        # Bursts of 4-12 requests at random moments, at REQUESTS / SUBMIT_SPAN a second on
        # average; a burst that meets an outage goes on when the server is back.
        pace = random.Random(f"{seed}-submit")
        deadline = t0 + SUBMIT_DEADLINE
        due, i = 0.0, 0
        with httpx.Client(base_url=cluster.url, timeout=15) as client:
            while i < len(keys):
                burst = keys[i : i + pace.randint(4, 12)]
                pause = t0 + due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)  # pacing the submission over the chaos
                for key in burst:
                    answers[key].append(submit(client, key, bodies[key], deadline, odd, abort))
                i += len(burst)
                due += len(burst) * SUBMIT_SPAN / REQUESTS * pace.uniform(0.5, 1.5)
        submitted.set()

    def kill_one_container(budget: collections.Counter[str]) -> bool:
        if RUNTIME == "ray":
            found = ray_containers(cluster.url)  # started ones only: Ray places the others
        else:
            found = live_containers(data, serving_only=not KILL_STARTING_CONTAINERS)
        candidates = [(pid, fn) for pid, fn in found if budget[fn] < MACHINE_RETRIES]
        if not candidates:
            return False
        # A function first, then one of its containers: the pools differ in size.
        function = rng.choice(sorted({fn for _, fn in candidates}))
        pid = rng.choice([pid for pid, fn in candidates if fn == function])
        try:
            kill_container(pid)
        except ProcessLookupError:
            return False
        budget[function] += 1
        stats.container_kills += 1
        stats.container_kills_by_function[function] += 1
        return True

    def sleep_until(moment: float) -> None:
        pause = moment - time.monotonic()
        if pause > 0:
            time.sleep(pause)

    def chaos() -> None:
        # Epochs between server restarts: each lets the pools warm up, then kills containers
        # at random moments, then (but the last) SIGKILLs the server at a random moment.
        budget: collections.Counter[str] = collections.Counter()  # kills since the last restart
        for epoch in range(SERVER_KILLS + 1):
            start = time.monotonic()
            last = epoch == SERVER_KILLS
            end = EPOCH_SECONDS * (1.0 if last else rng.uniform(0.75, 1.0))
            moments = sorted(
                rng.uniform(0.4 * EPOCH_SECONDS, end - 0.2) for _ in range(KILLS_PER_EPOCH)
            )
            for at in moments:
                sleep_until(start + at)
                if abort.is_set():
                    return
                for _ in range(10):  # no serving container right now: a little later
                    if kill_one_container(budget):
                        break
                    time.sleep(0.05)
            sleep_until(start + end)
            if not last:
                stats.restart_seconds.append(cluster.crash_and_restart(rng.uniform(0.0, 0.5)))
                stats.server_kills += 1
                budget.clear()
        deadline = time.monotonic() + 20
        while stats.container_kills < CONTAINER_KILLS and time.monotonic() < deadline:
            if kill_one_container(budget):
                time.sleep(rng.uniform(0.1, 0.4))
            else:
                time.sleep(0.1)

    threads = [Worker("submitter", submitter, abort), Worker("chaos", chaos, abort)]
    for thread in threads:
        thread.start()
    join_all(threads, SUBMIT_DEADLINE + 60)
    assert submitted.is_set()
    chaos_done = time.monotonic()
    print(
        f"submitted {len(answers)} requests and ran the chaos in {chaos_done - t0:.1f} s; "
        f"server restarts took {', '.join(f'{s:.1f}' for s in stats.restart_seconds)} s"
    )
    assert stats.server_kills == SERVER_KILLS
    assert stats.container_kills >= CONTAINER_KILLS, stats

    # -- the server stays up: every request finishes -----------------------------------
    request_ids = {key: answers[key][0] for key in keys}
    outputs, unfinished = _drain(cluster.url, request_ids)
    drained = time.monotonic()
    print(f"all requests answered {drained - chaos_done:.1f} s after the chaos ended")

    with httpx.Client(base_url=cluster.url, timeout=30) as client:
        listed = _list_requests(client)
        # A repeat of every key, now that all is quiet, still names the same request.
        for key in keys:
            answers[key].append(submit(client, key, bodies[key], time.monotonic() + 30, odd))
        listed_after = _list_requests(client)
    cluster.server.stop()
    kill_worker_groups(data)

    # -- the journal and the side-effect log --------------------------------------------
    calls = _journal_tokens(data, set(request_ids.values()))
    effects = _effects(log)
    violations, reruns = _check_effects(calls, effects)
    markers = len(list(log.parent.glob("marker-*")))
    retried = sum(1 for call in calls.values() if call.attempts > 1)
    print(
        f"requests: {len(request_ids)}, calls: {len(calls)}, server kills: {stats.server_kills}, "
        f"container kills: {stats.container_kills} {dict(stats.container_kills_by_function)}, "
        f"injected exceptions: {markers}, calls with several attempts in the journal: {retried}, "
        f"calls re-run after a finished run: {reruns}, "
        f"violations: {len(violations)}; total {time.monotonic() - began:.1f} s"
    )

    # Idempotency: one request per key, whatever happened to the POSTs.
    split = {key: ids for key, ids in answers.items() if len(set(ids)) != 1}
    assert not split, f"a key named different requests: {split}"
    assert len(set(request_ids.values())) == REQUESTS
    assert not odd, f"unexpected answers to POST: {odd[:10]}"

    # Every request finished, with the right output.
    assert not unfinished, f"{len(unfinished)} request(s) did not succeed: {unfinished[:10]}"
    wrong = []
    for i, key in enumerate(keys):
        rid, n = request_ids[key], n_of(i)
        out = outputs[rid]
        if (
            out.get("total") != expected_total(n)
            or out.get("state") != {"n": n, "request": rid}
            or len(out.get("tokens", [])) != n
        ):
            wrong.append((rid, n, out))
    assert not wrong, f"{len(wrong)} wrong output(s): {wrong[:5]}"

    # None lost, none duplicated.
    for found in (listed, listed_after):
        assert len(found) == REQUESTS, f"the server lists {len(found)} requests"
        assert set(found) == set(request_ids.values())

    # The journal holds every call of every request, each succeeded once.
    per_request = collections.Counter(rid for rid, _ in calls)
    for i, key in enumerate(keys):
        assert per_request[request_ids[key]] == 2 * n_of(i) + 2, request_ids[key]
    failed = {k: v for k, v in calls.items() if v.status != "succeeded"}
    assert not failed, f"calls not succeeded in the journal: {list(failed)[:10]}"

    # What parents and clients saw is what the journal recorded.
    mismatched = []
    for rid, out in outputs.items():
        seen = {"0": out["token"], "0.1": out["state_token"]}
        for i, (token, child) in enumerate(zip(out["tokens"], out["children"], strict=True)):
            seen[f"0.0.{i}"] = token
            seen[f"0.0.{i}.0"] = child
        for call_id, token in seen.items():
            if calls[(rid, call_id)].token != token:
                mismatched.append((rid, call_id))
    assert not mismatched, f"outputs differ from the journal: {mismatched[:10]}"

    # Durability: no call whose output was recorded ran its body after the recorded run.
    assert not violations, "\n".join(violations[:20])


# -- draining and listing ---------------------------------------------------------------
def _drain(
    url: str, request_ids: dict[str, str]
) -> tuple[dict[str, dict[str, Any]], list[tuple[str, int, str]]]:
    outputs: dict[str, dict[str, Any]] = {}
    unfinished: list[tuple[str, int, str]] = []
    deadline = time.monotonic() + DRAIN_DEADLINE
    with httpx.Client(base_url=url, timeout=60) as client:
        for rid in request_ids.values():
            while True:
                wait = max(0.0, min(20.0, deadline - time.monotonic()))
                r = client.get(f"/applications/{APP}/requests/{rid}/output", params={"wait": wait})
                if r.status_code == 200:
                    outputs[rid] = r.json()
                    break
                if r.status_code != 202 or wait == 0:
                    detail = client.get(f"/applications/{APP}/requests/{rid}").text
                    unfinished.append((rid, r.status_code, f"{r.text[:500]} {detail[:1500]}"))
                    break
    return outputs, unfinished


def _list_requests(client: httpx.Client) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(REQUESTS):  # pages
        params: dict[str, Any] = {"limit": 200}
        if cursor:
            params["cursor"] = cursor
        r = client.get(f"/applications/{APP}/requests", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        ids.extend(item["id"] for item in page["requests"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert len(ids) == len(set(ids)), "the listing repeats a request"
    return ids


# -- the journal and the side-effect log --------------------------------------------------
@dataclass
class Recorded:
    status: str
    token: str | None
    attempts: int


def _journal_tokens(data: Path, request_ids: set[str]) -> dict[tuple[str, str], Recorded]:
    """(request_id, call_id) -> the status and the token of the output the journal recorded."""
    # The servers' database: SQLite in the data folder, or COVE_DATABASE_URL's PostgreSQL.
    engine = sqlalchemy.create_engine(postgres_url(Settings(data_dir=data).database()))
    try:
        with engine.connect() as db:
            rows = db.exec_driver_sql(
                "SELECT request_id, call_id, status, attempts, output_mode, output_inline, "
                "output_blob FROM function_calls"
            ).fetchall()
    finally:
        engine.dispose()
    calls: dict[tuple[str, str], Recorded] = {}
    for rid, call_id, status, attempts, mode, inline, blob in rows:
        if rid not in request_ids:
            continue
        token = None
        if status == "succeeded":
            raw = inline if inline is not None else (data / "blobs" / blob[:2] / blob).read_bytes()
            value = json.loads(raw) if str(mode).startswith("json") else pickle.loads(raw)
            token = value["token"]
        calls[(rid, call_id)] = Recorded(status, token, int(attempts or 0))
    return calls


def _effects(log: Path) -> dict[tuple[str, str], list[str]]:
    """(request_id, call_id) -> the tokens of the runs that finished, in log order."""
    runs: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
    for line in log.read_text().splitlines():
        rid, call_id, token = line.split(" ")
        runs[(rid, call_id)].append(token)
    return runs


def _check_effects(
    calls: dict[tuple[str, str], Recorded], effects: dict[tuple[str, str], list[str]]
) -> tuple[list[str], int]:
    """Violations of "a recorded call never ran again", and how many runs were repeats."""
    violations = []
    for key in effects.keys() - calls.keys():
        violations.append(f"{key}: ran, but the journal has no such call")
    for key, call in calls.items():
        tokens = effects.get(key, [])
        if call.token is None:
            continue
        if tokens.count(call.token) != 1:
            violations.append(
                f"{key}: the recorded token {call.token} appears {tokens.count(call.token)} "
                f"time(s) in the log: {tokens}"
            )
            continue
        after = tokens[tokens.index(call.token) + 1 :]
        if after:
            violations.append(
                f"{key}: ran {len(after)} more time(s) after its recorded run: {tokens}"
            )
    reruns = sum(len(tokens) for tokens in effects.values()) - len(effects)
    return violations, reruns


# -- a container killed while it starts ---------------------------------------------------
@pytest.mark.local_runtime_only  # it finds the starting process by the local runtime's record
def test_container_killed_while_starting(
    tmp_path: Path, server_factory: type[ServerProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL the first container of the entry function while it imports the code: the
    queued requests must still succeed (a machine failure, retried on a fresh container)."""
    monkeypatch.setenv("CHAOS_WORKLOAD_IMPORT_DELAY", "1.0")  # inherited by the containers
    # Spawned containers import the code themselves, so they can be caught while starting.
    monkeypatch.setenv("COVE_USE_TEMPLATES", "false")
    data = tmp_path / "data"
    log = tmp_path / "effects.log"
    server = server_factory(data).start()
    server.deploy(WORKLOAD)
    with server.client() as client:
        ids = [
            client.post(f"/applications/{APP}", json={"log": str(log), "n": 4}).json()["request_id"]
            for _ in range(3)
        ]
        deadline = time.monotonic() + 30
        killed = None
        while killed is None and time.monotonic() < deadline:
            for pid, function in live_containers(data):
                if function == APP and not _has_served(pid):
                    os.killpg(pid, signal.SIGKILL)  # it is still importing the code
                    killed = pid
                    break
            else:
                time.sleep(0.005)  # the container's record appears when its process starts
        assert killed is not None, "no starting container seen"
        for rid in ids:
            r = client.get(f"/applications/{APP}/requests/{rid}/output", params={"wait": 60})
            assert r.status_code == 200, r.text
            assert r.json()["total"] == expected_total(4)


# -- the checker itself -----------------------------------------------------------------
def test_check_effects_tells_runs_before_and_after_the_recorded_one() -> None:
    calls = {
        ("r", "0"): Recorded("succeeded", "b", 2),  # "a" was lost to a crash: fine
        ("r", "0.0"): Recorded("succeeded", "c", 1),  # ran again after its recorded run
        ("r", "0.1"): Recorded("succeeded", "d", 1),  # its recorded run is not in the log
        ("r", "0.2"): Recorded("succeeded", "e", 1),  # its recorded run is logged twice
    }
    effects = {
        ("r", "0"): ["a", "b"],
        ("r", "0.0"): ["c", "x"],
        ("r", "0.1"): ["y"],
        ("r", "0.2"): ["e", "e"],
        ("r", "0.3"): ["z"],  # a call the journal does not know
    }
    violations, reruns = _check_effects(calls, effects)
    assert reruns == 3  # lines beyond one per call
    assert sorted(v.split(":")[0] for v in violations) == [
        "('r', '0.0')",
        "('r', '0.1')",
        "('r', '0.2')",
        "('r', '0.3')",
    ]
