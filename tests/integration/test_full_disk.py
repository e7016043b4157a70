"""A full disk (issue 18, item 4): the data folder on a small tmpfs that the test fills.

While it is full, invocations and deploys answer ``507 storage_full`` (nothing half-stored: no
request without its input, no new version), a running request whose output does not fit
waits (paused, not failed), ``/healthz`` answers ``503 storage_full``; once the filler is
deleted the server goes on without a restart: the paused request finishes, invocations
succeed, and SQLite and the blob store are consistent (``PRAGMA integrity_check``, every blob
the journal refers to present, no partial upload left behind).
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import APPS, ServerProcess, _kill_workers, wait_until

pytestmark = [pytest.mark.sqlite_only, pytest.mark.local_runtime_only]

DISK_SIZE = "32m"
#: Larger than the inline payload limit (16 KiB): stored in the blob store.
BIG_INPUT = "y" * 300_000
BIG_OUTPUT = 4_000_000


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of DISK_SIZE mounted in tmp_path (skips where that is not allowed)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system (tmpfs) needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield disk
    finally:
        _kill_workers(disk)
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> int:
    """Write the filler until the file system refuses another byte; returns its free bytes
    (0). Called again before each check, as the server may have freed some meanwhile."""
    with open(disk / "filler", "ab", buffering=0) as fh:
        for size in (1 << 20, 1 << 16, 1 << 12, 1):
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return os.statvfs(disk).f_bavail


def referenced_blobs(db: Path) -> set[str]:
    queries = [
        "SELECT code_blob FROM app_versions",
        "SELECT args_blob FROM function_calls",
        "SELECT output_blob FROM function_calls",
        "SELECT value_blob FROM request_state",
    ]
    with sqlite3.connect(db) as conn:
        return {key for q in queries for (key,) in conn.execute(q) if key}


def test_a_full_disk_answers_507_pauses_outputs_and_recovers_without_a_restart(
    small_disk: Path,
    server_factory: type[ServerProcess],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = small_disk / "data"
    server = server_factory(data)
    server.log = tmp_path / "server.log"  # the server's own output is not on the small disk
    server.start()
    errors: Counter[str] = Counter()
    statuses: Counter[int] = Counter()

    def note(r: httpx.Response) -> httpx.Response:
        statuses[r.status_code] += 1
        if r.status_code >= 400:
            errors[r.json()["error"]["code"]] += 1
        return r

    app_file = APPS / "full_disk.py"
    gate = tmp_path / "gate"  # off the small disk
    with server.client() as c:
        assert (
            note(
                c.post("/applications", files={"code": (app_file.name, app_file.read_bytes())})
            ).status_code
            == 201
        )
        r = note(c.post("/applications/echo", params={"wait": 60}, json=BIG_INPUT))
        assert r.status_code == 200 and r.json() == len(BIG_INPUT), r.text  # a warm container
        versions = c.get("/applications/echo").json()["versions"]

        # A request that runs while the disk fills, and returns a large output then.
        body = {"size": BIG_OUTPUT, "gate": str(gate)}
        big = note(c.post("/applications/big_output", json=body)).json()["request_id"]
        wait_until(
            lambda: c.get(f"/applications/big_output/requests/{big}").json()["status"] == "running",
            what="the big_output request to run",
        )

        assert fill(small_disk) == 0
        # An invocation whose input does not fit: 507, and no request recorded for it.
        for wait in (None, 60):
            fill(small_disk)
            params = {"wait": wait} if wait else {}
            r = note(c.post("/applications/echo", params=params, json=BIG_INPUT))
            assert r.status_code == 507, r.text
            assert r.json()["error"]["code"] == "storage_full"
        # A deploy of new code: 507, and no new version.
        fill(small_disk)
        code = app_file.read_bytes() + b"\n# another version\n"
        r = note(c.post("/applications", files={"code": (app_file.name, code)}))
        assert r.status_code == 507, r.text
        assert r.json()["error"]["code"] == "storage_full"
        assert c.get("/applications/echo").json()["versions"] == versions

        # The running request's output does not fit: it waits for room, not failed.
        fill(small_disk)
        gate.write_text("go")
        wait_until(
            lambda: c.get("/healthz").json()["storage"]["waiting_writes"] >= 1,
            what="the big output to wait for room",
        )
        health = c.get("/healthz")
        assert health.status_code == 503, health.text
        assert health.json()["status"] == "storage_full"
        record = c.get(f"/applications/big_output/requests/{big}").json()
        assert record["status"] == "running", record

        # Room again: no restart, everything goes on.
        (small_disk / "filler").unlink()
        wait_until(lambda: c.get("/healthz").status_code == 200, what="/healthz to be ok")
        assert c.get("/healthz").json()["status"] == "ok"
        r = c.get(f"/applications/big_output/requests/{big}/output", params={"wait": 60})
        assert r.status_code == 200 and len(r.json()) == BIG_OUTPUT, r.text[:300]
        r = note(c.post("/applications/echo", params={"wait": 60}, json=BIG_INPUT))
        assert r.status_code == 200 and r.json() == len(BIG_INPUT), r.text
        r = note(c.post("/applications", files={"code": (app_file.name, code)}))
        assert r.status_code == 201, r.text
        requests = {}
        for name in ("echo", "big_output"):
            listed = c.get(f"/applications/{name}/requests").json()["requests"]
            requests[name] = dict(Counter(x["status"] for x in listed))
    server.stop()

    db = data / "cove.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    blobs = data / "blobs"
    missing = [k for k in referenced_blobs(db) if not (blobs / k[:2] / k).exists()]
    assert not missing, f"blobs the journal refers to are missing: {missing}"
    assert not any((blobs / ".tmp").iterdir()), "a partial upload was left behind"
    report = (
        f"full disk: requests {dict(requests)}, HTTP statuses {dict(statuses)}, "
        f"errors by code {dict(errors)}, blobs referenced {len(referenced_blobs(db))} (0 missing)"
    )
    with capsys.disabled():  # the figures show in CI's output too
        print(f"\n{report}", flush=True)
    assert requests["echo"] == {"succeeded": 2}, report  # the two refused were never recorded
    assert requests["big_output"] == {"succeeded": 1}, report
    assert errors == {"storage_full": 3}, report
