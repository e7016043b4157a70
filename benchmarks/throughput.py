"""Requests per second from many concurrent HTTP/1.1 keep-alive clients.

The clients are coroutines on one asyncio loop that write raw requests and read raw
answers: a client costs a few tens of microseconds of CPU per request, so on a 2-core
machine nearly all of the CPU is left to the server being measured (a thread per client
with ``httpx`` would take a large share of it).

They run in a process of their own (``python -m benchmarks.throughput ARGS``), not in the
benchmark's, so that nothing else the benchmark's process holds (threads, a garbage
collector's work on its results) competes with them, and so that the CPU they use is theirs
alone: the result reports it (``clients_cpu_s``, ``clients_cpu_ms_per_request``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: The folder holding the ``benchmarks`` package, for the clients' process.
_ROOT = Path(__file__).resolve().parent.parent


class ThroughputError(RuntimeError):
    pass


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return status, body
            body += chunk[:-2]
    raise ThroughputError(f"an answer with neither Content-Length nor chunks: {head!r}")


async def _client(
    host: str,
    port: int,
    request: bytes,
    expected: bytes | None,
    stop_at: float,
    done: list[tuple[float, float]],
    errors: list[str],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            writer.write(request)
            status, body = await _read_answer(reader)
            ended = time.perf_counter()
            if status != 200 or (expected is not None and body.strip() != expected):
                errors.append(f"HTTP {status}: {body[:200]!r}")
                continue
            done.append((ended, ended - began))
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def _run(
    host: str, port: int, path: str, expected: bytes | None, clients: int,
    warmup_s: float, seconds: float,
) -> dict[str, Any]:  # fmt: skip
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 0\r\n\r\n").encode()
    done: list[tuple[float, float]] = []
    errors: list[str] = []
    cpu: dict[str, float] = {}  # this process's CPU seconds at the window's start and end
    began = time.perf_counter()
    window_start = began + warmup_s
    window_end = window_start + seconds
    await asyncio.gather(
        _cpu_at(window_start, cpu, "start"),
        _cpu_at(window_end, cpu, "end"),
        *(_client(host, port, request, expected, window_end, done, errors) for _ in range(clients)),
    )
    finished = time.perf_counter()
    window_cpu = cpu["end"] - cpu["start"]
    inside = [latency for ended, latency in done if window_start <= ended <= window_end]
    ms = sorted(x * 1000 for x in inside)
    return {
        "clients": clients,
        "warmup_s": warmup_s,
        "window_s": seconds,
        "requests": len(inside),
        "requests_total": len(done),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "requests_per_s": round(len(inside) / seconds, 1),
        "p50_ms": round(_percentile(ms, 50), 2) if ms else None,
        "p99_ms": round(_percentile(ms, 99), 2) if ms else None,
        "drain_s": round(finished - window_end, 3),
        "clients_pid": os.getpid(),
        "clients_cpu_s": round(window_cpu, 3),
        "clients_cpu_ms_per_request": round(window_cpu * 1000 / len(inside), 4) if inside else None,
        "clients_cpu_total_s": round(time.process_time(), 3),
    }


async def _cpu_at(when: float, into: dict[str, float], key: str) -> None:
    """Notes this process's CPU seconds at ``when`` (a ``perf_counter`` time) as ``key``."""
    await asyncio.sleep(max(0.0, when - time.perf_counter()))
    into[key] = time.process_time()


def _percentile(ordered: list[float], q: float) -> float:
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def measure_throughput(
    host: str,
    port: int,
    path: str,
    expected: bytes | None,
    clients: int = 64,
    warmup_s: float = 1.0,
    seconds: float = 5.0,
) -> dict[str, Any]:
    """``clients`` connections each POST ``path`` in a loop, one request at a time, from a
    process of their own.

    Answers that end in the ``seconds`` after ``warmup_s`` are counted; every answer must be
    a 200 whose body is ``expected``. ``clients_cpu_s`` is the CPU the clients' process used
    in those ``seconds``, ``clients_cpu_ms_per_request`` the same per counted answer, and
    ``clients_cpu_total_s`` all it used (its start, the warm-up and the drain included).
    """
    arguments = {
        "host": host,
        "port": port,
        "path": path,
        "expected": None if expected is None else expected.decode("latin-1"),
        "clients": clients,
        "warmup_s": warmup_s,
        "seconds": seconds,
    }
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.throughput", json.dumps(arguments)],
            cwd=_ROOT, env=env, capture_output=True, text=True,
            timeout=warmup_s + seconds + 300,
        )  # fmt: skip
    except subprocess.TimeoutExpired as err:
        raise ThroughputError(f"the clients' process did not finish in {err.timeout:g} s") from err
    if done.returncode != 0:
        raise ThroughputError(
            f"the clients' process failed (exit {done.returncode}): {done.stderr.strip()[-1000:]}"
        )
    result: dict[str, Any] = json.loads(done.stdout)
    if result["errors"]:
        raise ThroughputError(f"{result['errors']} failed requests, e.g. {result['first_error']}")
    return result


def _main(argv: list[str]) -> None:
    """The clients' process: runs them and prints the result as JSON."""
    a = json.loads(argv[0])
    expected = None if a["expected"] is None else a["expected"].encode("latin-1")
    result = asyncio.run(
        _run(a["host"], a["port"], a["path"], expected, a["clients"], a["warmup_s"], a["seconds"])
    )
    print(json.dumps(result))


if __name__ == "__main__":
    _main(sys.argv[1:])
