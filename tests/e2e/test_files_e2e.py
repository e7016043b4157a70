"""Files at scale against a real ``cove server``: a 2 GiB round trip in bounded memory, and
an upload cut by a server crash that leaves nothing behind once the server is back."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.apps.file_apps import CHUNK, pattern
from tests.conftest import APPS, ServerProcess, wait_until

GiB = 1024**3
MAX_RSS_KB = 150 * 1024


def peak_rss_kb(pid: int) -> int:
    """The process's peak resident memory (VmHWM) from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")


def container_pids(data: Path) -> list[int]:
    return [int(p.name) for p in (data / "containers").iterdir() if p.name.isdigit()]


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_two_gib_round_trip_in_bounded_memory(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    data = tmp_path / "data"
    server = server_factory(data).start()
    server.deploy(APPS / "file_apps.py")
    size = 2 * GiB
    sent = hashlib.sha256()

    def body() -> Iterator[bytes]:
        block = pattern(b"in", CHUNK)
        left = size
        while left > 0:
            chunk = block[: min(CHUNK, left)]
            sent.update(chunk)
            left -= len(chunk)
            yield chunk

    timeout = httpx.Timeout(600.0)
    with httpx.Client(base_url=server.url, timeout=timeout) as client:
        r = client.post(
            "/applications/digest_and_echo",
            content=body(),
            headers={"Content-Type": "application/x-big"},
        )
        assert r.status_code == 200, r.text
        rid = r.json()["request_id"]
        url = f"/applications/digest_and_echo/requests/{rid}/output"

        def finished() -> bool:
            return client.get(f"/applications/digest_and_echo/requests/{rid}").json()[
                "status"
            ] not in ("pending", "running")

        wait_until(finished, 900, "the 2 GiB request to finish")
        head = sent.hexdigest().encode()  # what the function must have computed
        expected = hashlib.sha256(head)
        block, left = pattern(head, CHUNK), size - len(head)
        while left > 0:
            expected.update(block[: min(CHUNK, left)])
            left -= CHUNK
        got, received = hashlib.sha256(), 0
        with client.stream("GET", url) as response:
            assert response.status_code == 200
            assert response.headers["content-length"] == str(size)
            assert response.headers["content-type"] == "application/x-cove-test"
            first = True
            for chunk in response.iter_bytes(CHUNK):
                if first:
                    assert chunk[:64] == head  # the container's streamed SHA-256 of the upload
                    first = False
                got.update(chunk)
                received += len(chunk)
        assert received == size
        assert got.hexdigest() == expected.hexdigest()

    assert server.process is not None
    server_peak = peak_rss_kb(server.process.pid)
    assert server_peak < MAX_RSS_KB, f"server peak RSS {server_peak} kB"
    pids = container_pids(data)
    assert pids, "the container is still up (idle) to be measured"
    peaks = {pid: peak_rss_kb(pid) for pid in pids}
    assert max(peaks.values()) < MAX_RSS_KB, f"container peak RSS (kB): {peaks}"


@pytest.mark.slow
def test_an_upload_cut_by_a_crash_leaves_nothing_after_one_cleanup_pass(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    data = tmp_path / "data"
    server = server_factory(data).start()
    server.deploy(APPS / "file_apps.py")
    tmp = data / "blobs" / ".tmp"
    blobs_before = sorted(p.name for p in (data / "blobs").glob("??/*"))
    release = threading.Event()

    def body() -> Iterator[bytes]:
        for _ in range(16):
            yield b"c" * CHUNK
        release.wait(120)  # the server dies while the upload is half-way
        yield b"never stored"

    def upload() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the connection dies with the server
            httpx.post(f"{server.url}/applications/digest_and_echo", content=body(), timeout=120)

    thread = threading.Thread(target=upload)
    thread.start()
    try:
        wait_until(
            lambda: any(p.stat().st_size >= 8 * CHUNK for p in tmp.iterdir()),
            60,
            "the upload to be half-way in a temporary file",
        )
        server.kill()
    finally:
        release.set()
        thread.join(60)
    assert list(tmp.iterdir()), "the crash left a temporary"
    server_factory(data, port=server.port).start()
    wait_until(lambda: not list(tmp.iterdir()), 60, "the startup cleanup pass")
    assert sorted(p.name for p in (data / "blobs").glob("??/*")) == blobs_before
