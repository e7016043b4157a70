"""Several ``cove server`` replicas on one PostgreSQL database (docs/postgres.md): any replica
answers for any request, each call runs on exactly one replica, and a replica that dies has
its requests taken over by another without re-running finished calls."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
from cryptography.fernet import Fernet

from cove.engine.leases import default_replica_id
from cove.store.database import postgres_url as with_driver
from tests.conftest import APPS, ServerProcess, wait_until

pytestmark = pytest.mark.slow
#: Seconds: short, so a dead replica's requests are taken over quickly, and long enough that
#: live replicas on a busy 2-core machine keep renewing theirs.
LEASE = "3"


def _lines(log: Path) -> list[tuple[str, str, str]]:
    if not log.exists():
        return []
    return [tuple(line.split(" ", 2)) for line in log.read_text().splitlines()]  # type: ignore[misc]


def _job(log: Path, steps: int, block_at: int = -1) -> dict[str, Any]:
    return {"log": str(log), "steps": steps, "block_at": block_at}


def _start_blocked_job(
    server: ServerProcess, root: Path, steps: int, block_at: int
) -> tuple[str, Path]:
    """Deploy durable.py on ``server`` and start a job that blocks at step ``block_at`` (until
    ``<root>/work/go`` exists); returns its request id and its side-effect log."""
    server.deploy(APPS / "durable.py")
    work = root / "work"
    work.mkdir()
    log = work / "effects.log"
    with server.client() as c:
        rid = c.post("/applications/durable_job", json=_job(log, steps, block_at)).json()
    step = f"start step{block_at}"
    wait_until(lambda: step in [t for _, _, t in _lines(log)], what=f"step{block_at} to start")
    return str(rid["request_id"]), log


def _replica(
    factory: type[ServerProcess], root: Path, name: str, database: str, lease: str = "10"
) -> ServerProcess:
    env = {
        "COVE_DATABASE_URL": database,
        "COVE_BLOB_URL": f"file://{root / 'blobs'}",  # shared: every replica reads payloads
        "COVE_LEASE_SECONDS": lease,
    }
    return factory(root / name, env=env).start()


def _owner(database: str, request_id: str) -> str | None:
    engine = sqlalchemy.create_engine(with_driver(database))
    try:
        with engine.connect() as conn:
            found = conn.execute(
                sqlalchemy.text("SELECT owner FROM request_leases WHERE request_id = :r"),
                {"r": request_id},
            ).scalar()
            return None if found is None else str(found)
    finally:
        engine.dispose()


def _replica_status(server: ServerProcess) -> dict[str, Any]:
    with server.client() as c:
        replica: dict[str, Any] = c.get("/status").json()["replica"]
    return replica


def _takeovers_metric(text: str) -> float:
    (line,) = [x for x in text.splitlines() if x.startswith("cove_request_takeovers_total ")]
    return float(line.split()[1])


def _containers(data: Path) -> list[str]:
    """The containers (not templates) a replica has running."""
    found = []
    for record in (data / "containers").iterdir():
        with contextlib.suppress(FileNotFoundError):
            if not record.read_text().startswith("template"):
                found.append(record.name)
    return found


def _output(server: ServerProcess, request_id: str, wait: float = 60) -> httpx.Response:
    with server.client() as c:
        return c.get(
            f"/applications/durable_job/requests/{request_id}/output", params={"wait": wait}
        )


def _events(server: ServerProcess, request_id: str, into: list[dict[str, Any]]) -> None:
    """Follow the request's Server-Sent Events until it finishes."""
    url = f"/applications/durable_job/requests/{request_id}/progress"
    with server.client() as c, c.stream("GET", url) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                into.append(json.loads(line[len("data: ") :]))
                if into[-1]["type"] == "request_finished":
                    return


def test_any_replica_answers_for_a_request_another_runs(
    tmp_path: Path, server_factory: type[ServerProcess], postgres_url: str
) -> None:
    a = _replica(server_factory, tmp_path, "a", postgres_url)
    rid, log = _start_blocked_job(a, tmp_path, 3, 1)

    # A replica starting now must not take over a request a live replica runs.
    b = _replica(server_factory, tmp_path, "b", postgres_url)
    assert _owner(postgres_url, rid) == default_replica_id(str((tmp_path / "a").resolve()))
    with b.client() as c:
        status = c.get(f"/applications/durable_job/requests/{rid}").json()
        assert status["status"] == "running"
        assert c.get(f"/applications/durable_job/requests/{rid}/output").status_code == 202

    # B waits for the output and follows the events of the request A runs.
    answers: list[httpx.Response] = []
    events: list[dict[str, Any]] = []
    waiter = threading.Thread(target=lambda: answers.append(_output(b, rid)))
    follower = threading.Thread(target=_events, args=(b, rid, events))
    waiter.start()
    follower.start()
    wait_until(lambda: bool(events), what="the first event on B")
    log.with_name("go").write_text("go")
    waiter.join(90)
    follower.join(90)
    assert answers and answers[0].status_code == 200, answers
    assert answers[0].json() == {"total": 30, "squares": [0, 1, 4], "stamp": "kept"}
    kinds = [e["type"] for e in events]
    assert kinds[0] == "request_started" and kinds[-1] == "request_finished"
    assert "call_started" in kinds and events[-1]["status"] == "succeeded"
    starts = collections.Counter(t for _, _, t in _lines(log) if t.startswith("start"))
    assert starts == {"start step0": 1, "start step1": 1, "start step2": 1}

    # A request B runs is cancelled through A: B stops it, and it stays cancelled.
    other = tmp_path / "other"
    other.mkdir()
    with b.client() as c:
        body = _job(other / "effects.log", 2, 0)
        rid2 = c.post("/applications/durable_job", json=body).json()["request_id"]
    wait_until(lambda: bool(_lines(other / "effects.log")), what="step0 to start on B")
    with a.client() as c:
        r = c.delete(f"/applications/durable_job/requests/{rid2}")
        assert r.status_code == 200, r.text
    with b.client() as c:
        assert c.get(f"/applications/durable_job/requests/{rid2}").json()["status"] == "cancelled"
        assert c.delete(f"/applications/durable_job/requests/{rid2}").status_code == 409
    # B stops the cancelled request's running calls (no other request runs on B).
    wait_until(lambda: not _containers(tmp_path / "b"), 30, "B to stop the request's containers")
    (other / "go").write_text("go")
    with b.client() as c:
        # A later request through the same functions completes first.
        done = c.post("/applications/durable_job", params={"wait": 60}, json=_job(log, 1))
        assert done.status_code == 200, done.text
    assert [t for _, _, t in _lines(other / "effects.log")] == ["start step0"]


def test_requests_spread_over_two_replicas_run_each_call_once(
    tmp_path: Path, server_factory: type[ServerProcess], postgres_url: str
) -> None:
    replicas = [_replica(server_factory, tmp_path, n, postgres_url) for n in ("a", "b")]
    replicas[0].deploy(APPS / "durable.py")
    log = tmp_path / "effects.log"

    def one(i: int) -> tuple[str, httpx.Response]:
        accepting, answering = replicas[i % 2], replicas[(i + 1) % 2]
        with accepting.client() as c:
            r = c.post("/applications/durable_job", json=_job(log, 2))
            assert r.status_code == 200, r.text
        rid = r.json()["request_id"]
        return rid, _output(answering, rid)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(50)))
    for _rid, answer in results:
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"total": 10, "squares": [0, 1], "stamp": "kept"}
    done = collections.Counter((rid, call) for rid, call, tag in _lines(log) if "done" in tag)
    assert len(done) == 50 * 5  # two steps, two squares and a stamp per request
    assert all(n == 1 for n in done.values()), [k for k, n in done.items() if n > 1]


def test_a_killed_replica_s_request_is_taken_over_without_rerunning_finished_calls(
    tmp_path: Path, server_factory: type[ServerProcess], postgres_url: str
) -> None:
    a = _replica(server_factory, tmp_path, "a", postgres_url, LEASE)
    b = _replica(server_factory, tmp_path, "b", postgres_url, LEASE)
    rid, log = _start_blocked_job(a, tmp_path, 6, 3)
    a_id, b_id = (default_replica_id(str((tmp_path / n).resolve())) for n in ("a", "b"))
    for server in (a, b):  # each lists both; A runs the request
        replicas = {r["id"]: r for r in _replica_status(server)["replicas"]}
        assert set(replicas) == {a_id, b_id}
        assert replicas[a_id]["requests"] == 1 and replicas[b_id]["requests"] == 0
    assert _replica_status(a)["owned_requests"] == {"count": 1, "ids": [rid]}
    assert _replica_status(b)["takeovers"] == 0

    # A's machine dies: the server and its containers, at once.
    a.kill()
    for record in (tmp_path / "a" / "containers").iterdir():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.killpg(int(record.name), signal.SIGKILL)
    log.with_name("go").write_text("go")

    answer = _output(b, rid)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"total": 150, "squares": [0, 1, 4, 9, 16, 25], "stamp": "kept"}
    assert _owner(postgres_url, rid) in (None, default_replica_id(str((tmp_path / "b").resolve())))
    done = collections.Counter(call for _, call, tag in _lines(log) if tag.startswith("done"))
    assert all(n == 1 for n in done.values()), done
    assert len(done) == 6 + 6 + 1
    starts = collections.Counter(t for _, _, t in _lines(log) if t.startswith("start"))
    # Steps 0-2 had finished on A: B never ran them. Step 3 was running when A died.
    assert [starts[f"start step{i}"] for i in range(6)] == [1, 1, 1, 2, 1, 1]
    with b.client() as c:
        events = c.get(f"/applications/durable_job/requests/{rid}/progress?format=json").json()
        metrics = c.get("/metrics").text
    assert any(e["type"] == "request_started" and e["resumed"] for e in events["events"])
    # B counts the takeover; A, dead, drops off the list once its row is no longer renewed.
    assert _replica_status(b)["takeovers"] >= 1
    assert _takeovers_metric(metrics) >= 1
    wait_until(
        lambda: [r["id"] for r in _replica_status(b)["replicas"]] == [b_id],
        30,
        "the dead replica to leave the list",
    )


def test_a_replica_stopped_gracefully_hands_its_requests_over_at_once(
    tmp_path: Path, server_factory: type[ServerProcess], postgres_url: str
) -> None:
    # Leases of a minute: B can only finish the request in time if A released it.
    env = {
        "COVE_DATABASE_URL": postgres_url,
        "COVE_BLOB_URL": f"file://{tmp_path / 'blobs'}",
        "COVE_LEASE_SECONDS": "60",
        "COVE_SHUTDOWN_GRACE": "0",
    }
    a = server_factory(tmp_path / "a", env=env).start()
    b = server_factory(tmp_path / "b", env=env).start()
    rid, log = _start_blocked_job(a, tmp_path, 3, 1)
    a.stop()  # SIGINT: A stops its containers and releases its leases
    assert a.process is not None and a.process.returncode is not None
    log.with_name("go").write_text("go")
    answer = _output(b, rid, wait=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"total": 30, "squares": [0, 1, 4], "stamp": "kept"}
    done = collections.Counter(call for _, call, tag in _lines(log) if tag.startswith("done"))
    assert all(n == 1 for n in done.values()), done


def test_secrets_set_through_one_replica_reach_functions_another_runs(
    tmp_path: Path, server_factory: type[ServerProcess], postgres_url: str
) -> None:
    key = {"COVE_SECRETS_KEY": Fernet.generate_key().decode()}  # the same on every replica
    env = {"COVE_DATABASE_URL": postgres_url, "COVE_BLOB_URL": f"file://{tmp_path / 'blobs'}"}
    a = server_factory(tmp_path / "a", env={**env, **key}).start()
    b = server_factory(tmp_path / "b", env={**env, **key}).start()
    with a.client() as c:
        assert c.put("/secrets/API_TOKEN", json={"value": "from-a"}).status_code == 204
    with b.client() as c:
        assert c.get("/secrets").json() == {"secrets": [{"name": "API_TOKEN"}]}
    b.deploy(APPS / "secretive.py")  # B's deploy finds the secret set through A
    with b.client() as c:
        r = c.post("/applications/read_secrets", params={"wait": 60})
        assert r.status_code == 200, r.text
        rid = r.headers["x-cove-request-id"]
        assert r.json()["with"] == {"API_TOKEN": "from-a", "OTHER": None}
    assert _owner(postgres_url, rid) in (None, default_replica_id(str((tmp_path / "b").resolve())))

    # A replica with another key would write secrets no other replica can read: it does
    # not start, and says why.
    wrong = {"COVE_SECRETS_KEY": Fernet.generate_key().decode()}
    with pytest.raises(RuntimeError, match="server exited") as info:
        server_factory(tmp_path / "c", env={**env, **wrong}).start()
    said = " ".join(str(info.value).split())  # the message, however the console wrapped it
    assert "cannot decrypt the secrets in the database" in said
    assert "same key" in said and "Traceback" not in said
    # Nor does one with no key at all (it would make its own).
    with pytest.raises(RuntimeError, match="server exited") as info:
        server_factory(tmp_path / "d", env=env).start()
    said = " ".join(str(info.value).split())
    assert "has no key to read them" in said and "Traceback" not in said
    assert not (tmp_path / "d" / "secrets.key").exists()


def test_a_replica_with_a_blob_folder_of_its_own_does_not_start(
    tmp_path: Path, server_factory: type[ServerProcess], postgres_url: str
) -> None:
    """Issue 14: each replica with its default <data>/blobs answered a call of code deployed
    through another with `internal error: '<sha256>'`. Now the second one does not start and
    says why; given the first one's folder (a shared disk), it starts and runs that code."""
    env = {"COVE_DATABASE_URL": postgres_url}
    a = server_factory(tmp_path / "a", env=env).start()  # blobs in its data folder
    a.deploy(APPS / "core.py")
    with pytest.raises(RuntimeError, match="server exited") as info:
        server_factory(tmp_path / "b", env=env).start()
    said = " ".join(str(info.value).split())  # the message, however the console wrapped it
    assert "is not the one the other replicas on this database use" in said
    assert "COVE_BLOB_URL" in said and "docs/scaling.md" in said
    assert "Traceback" not in said

    shared = {**env, "COVE_BLOB_URL": (tmp_path / "a" / "blobs").resolve().as_uri()}
    b = server_factory(tmp_path / "b", env=shared).start()
    with b.client() as c:
        r = c.post("/applications/shout", params={"wait": 60}, json="quiet")
        assert r.status_code == 200 and r.json() == "QUIET", r.text
