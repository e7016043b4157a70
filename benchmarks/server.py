"""A ``cove server`` subprocess for the benchmarks: start, deploy, inspect, stop."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx

APPS_FILE = Path(__file__).with_name("apps.py")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_kb(pid: int, field: str = "VmRSS") -> int | None:
    """``field`` (VmRSS, VmHWM, ...) of ``/proc/<pid>/status`` in kB, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def cpu_seconds(pid: int, tid: int | None = None) -> float | None:
    """User + system CPU seconds ``pid`` (or only its thread ``tid``) has used so far."""
    stat = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class ServerProcess:
    """One server with its own data folder; ``synchronous=None`` keeps the default."""

    #: What follows ``sys.executable`` to run the Cove CLI (an experiment may swap it for a
    #: script that patches the server before running the same CLI).
    launcher: tuple[str, ...] = ("-m", "cove.cli.main")

    def __init__(
        self,
        data_dir: Path,
        synchronous: str | None = None,
        env: dict[str, str | None] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.data_dir = data_dir
        self.synchronous = synchronous
        #: Added to (or replacing) this process's environment; None removes a variable.
        self.env = dict(env or {})
        self.args = args  # more ``cove server`` options
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}-server.log"

    def start(self, timeout: float = 60.0) -> float:
        """Start the server; returns the seconds until ``/healthz`` answered 200."""
        env = dict(os.environ)
        env.pop("COVE_SQLITE_SYNCHRONOUS", None)
        if self.synchronous is not None:
            env["COVE_SQLITE_SYNCHRONOUS"] = self.synchronous
        for key, value in self.env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        command = [
            sys.executable, *self.launcher, "server",
            "--port", str(self.port), "--data-dir", str(self.data_dir), *self.args,
        ]  # fmt: skip
        began = time.perf_counter()
        self.process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log
        )
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"the server exited with {self.process.returncode}; see {self.log_path}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(f"{self.url}/healthz").status_code == 200:
                        return time.perf_counter() - began
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the server did not answer /healthz in {timeout:g} s")

    def deploy(self, path: Path = APPS_FILE) -> list[str]:
        """Deploy ``path`` as ``Client.deploy`` does; returns the application names."""
        files = {"code": (path.name, path.read_bytes(), "text/x-python")}
        response = httpx.post(f"{self.url}/applications", files=files, timeout=180.0)
        response.raise_for_status()
        return [app["name"] for app in response.json()["applications"]]

    def container_pids(self) -> list[int]:
        """The pids of the server's containers (file names under ``containers/``)."""
        folder = self.data_dir / "containers"
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())

    def container_functions(self) -> dict[int, str]:
        """Container pid -> the function it serves (from its container id, recorded as
        ``<app>-v<version>-<function>-<n>`` in the pid's file); a template process (which
        containers are forked from) maps to ``template``."""
        found: dict[int, str] = {}
        for pid in self.container_pids():
            try:
                record = (self.data_dir / "containers" / str(pid)).read_text().strip()
            except OSError:
                continue
            named = re.search(r"-v\d+-(.+)-\d+$", record)
            found[pid] = "template" if record.startswith("template ") else (
                named.group(1) if named else "?"
            )
        return found

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (the server stops its containers), then SIGKILL what is left."""
        if self.process is None:
            return
        leftovers = self.container_pids()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in leftovers:  # containers are process groups this server started
            if _is_worker(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None
        self.process = None

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _is_worker(pid: int) -> bool:
    try:
        return b"cove.runtime.worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
