"""A throw-away Ray head node for running the suites on the Ray runtime.

The suite runs containers as local processes by default. With ``COVE_TEST_RUNTIME=ray``
every engine and server a test starts places its containers as actors on one Ray head node
that the session starts (``COVE_RUNTIME=ray``, ``COVE_RAY_ADDRESS``). Ray clusters in tests
run inside a network namespace that the test run creates itself, so the run goes through
``python -m tests.netns``, which makes one with only a loopback interface::

    COVE_TEST_RUNTIME=ray python -m tests.netns python -m pytest -m "not local_runtime_only" \
        tests/integration tests/chaos

Where Ray is missing or the run is not inside such a namespace, those tests fail and say so
(they were asked for explicitly).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.raycluster import ray_start

BIN = Path(sys.executable).parent
HOW = "run it as: COVE_TEST_RUNTIME=ray python -m tests.netns python -m pytest ..."


def interfaces() -> list[str]:
    """The network interfaces of this process's network namespace."""
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    return [line.split(":", 1)[0].strip() for line in lines]


def missing() -> str | None:
    """Why a Ray head cannot run here, or None."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return "ray is not installed (pip install 'cove[ray]')"
    others = [name for name in interfaces() if name != "lo"]
    if others:
        return f"not inside a network namespace of its own (interfaces {others}); {HOW}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RayHead:
    """One Ray head node on 127.0.0.1, as a process group this session owns."""

    def __init__(self, cpus: int = 8, memory_gb: int = 16) -> None:
        # Short: Ray's Unix socket paths live under it (at most 107 characters).
        self.root = Path(tempfile.mkdtemp(prefix="crh", dir="/tmp"))
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.cpus = cpus
        self.memory_gb = memory_gb
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> RayHead:
        log = open(self.root / "head.log", "wb")  # noqa: SIM115 - closed below
        command = ray_start("--head", "--port", str(self.port), "--include-dashboard", "false",
                            "--temp-dir", str(self.root / "ray"),
                            cpus=self.cpus, memory_gb=self.memory_gb)  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
        )
        log.close()
        deadline = time.monotonic() + timeout
        while b"Ray runtime started" not in (self.root / "head.log").read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                text = (self.root / "head.log").read_text(errors="replace")[-3000:]
                self.stop()
                raise RuntimeError(f"the Ray head did not start:\n{text}")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)
            self.process = None
        subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)
