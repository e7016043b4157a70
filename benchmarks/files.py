"""The ``files`` phase: upload and download throughput (MB/s) of one large file per blob
backend, through a real ``cove server`` over HTTP.

The application takes a ``File`` and returns it (by reference: no copy), so the upload is
the raw body streamed into the blob store (timed until the request is durable) and the
download is the output streamed back from the blob store. The S3 backend runs against moto
in server mode on 127.0.0.1 (the ``dev`` extra): its figures measure Cove plus moto, not a
real S3 service.

Run alone: ``python -m benchmarks.files [SIZE_MIB]``; from the suite: :func:`run_files_phase`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

GiB = 1024**3
CHUNK = 1024 * 1024
APP = """
from cove import File, application, function

@application()
@function()
def passthrough(f: File) -> File:
    return f
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _body(size: int) -> Iterator[bytes]:
    block = hashlib.sha256(b"bench").digest() * (CHUNK // 32)
    left = size
    while left > 0:
        yield block[: min(CHUNK, left)]
        left -= CHUNK


@contextlib.contextmanager
def _server(data: Path, env: dict[str, str]) -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "cove.cli.main", "server", "--port", str(port)]
    log = open(data / "server.log", "ab")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [*cmd, "--data-dir", str(data / "cove")],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: see {data / 'server.log'}")
            time.sleep(0.05)  # a process starting to listen: nothing to await
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
        log.close()
        for record in (data / "cove" / "containers").glob("*"):
            with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
                os.killpg(int(record.name), signal.SIGKILL)


def measure(url: str, code: Path, size: int) -> dict[str, float]:
    """Upload ``size`` bytes, then download them, through the server at ``url``."""
    with httpx.Client(base_url=url, timeout=httpx.Timeout(900.0)) as client:
        r = client.post("/applications", files={"code": (code.name, code.read_bytes())})
        r.raise_for_status()
        started = time.perf_counter()
        r = client.post("/applications/passthrough", content=_body(size))
        r.raise_for_status()
        upload = time.perf_counter() - started
        rid = r.json()["request_id"]
        out = f"/applications/passthrough/requests/{rid}/output"
        r = client.get(out, params={"wait": 300}, headers={"Range": "bytes=0-0"})
        assert r.status_code == 206, r.text
        started, received = time.perf_counter(), 0
        with client.stream("GET", out) as response:
            response.raise_for_status()
            for chunk in response.iter_bytes(CHUNK):
                received += len(chunk)
        download = time.perf_counter() - started
    if received != size:
        raise RuntimeError(f"downloaded {received} bytes of {size}")
    mb = size / 1e6
    return {
        "bytes": size,
        "upload_s": round(upload, 3),
        "download_s": round(download, 3),
        "upload_mb_s": round(mb / upload, 1),
        "download_mb_s": round(mb / download, 1),
    }


def _s3_env(endpoint: str) -> dict[str, str]:
    import boto3

    bucket = "cove-bench"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    ).create_bucket(Bucket=bucket)
    return {
        "COVE_BLOB_URL": f"s3://{bucket}/cove",
        "COVE_BLOB_S3_ENDPOINT_URL": endpoint,
        "COVE_BLOB_S3_REGION": "us-east-1",
        "COVE_BLOB_S3_ACCESS_KEY_ID": "bench",
        "COVE_BLOB_S3_SECRET_ACCESS_KEY": "bench",
    }


def run_files_phase(
    work_dir: Path | None = None, size: int = GiB, backends: tuple[str, ...] = ("local", "s3")
) -> dict[str, Any]:
    """``{"files": {backend: {"upload_mb_s", "download_mb_s", ...}}}`` for each backend."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        root = Path(tmp)
        code = root / "passthrough.py"
        code.write_text(APP)
        for backend in backends:
            data = root / backend
            data.mkdir()
            if backend == "local":
                with _server(data, {}) as url:
                    results[backend] = measure(url, code, size)
                continue
            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per S3 request
            port = _free_port()
            moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            moto.start()
            try:
                with _server(data, _s3_env(f"http://127.0.0.1:{port}")) as url:
                    results[backend] = measure(url, code, size)
            finally:
                moto.stop()
    return {"files": results}


if __name__ == "__main__":
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    print(json.dumps(run_files_phase(size=mib * 1024 * 1024), indent=2))
