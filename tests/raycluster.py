"""A Ray cluster (and Cove servers) inside a network namespace of its own.

Used by tests/e2e/test_ray.py and benchmarks/ray.py. :meth:`Cluster.create` makes a
network namespace with only a loopback interface (``ip netns add <prefix>-<random>``);
every process is started in it with :meth:`Cluster.spawn`, as PID 1 of a PID namespace of
its own (so one SIGKILL ends it and all it started, a whole Ray node for instance). A
server in the namespace is reached through a Unix socket that a small forwarder inside
the namespace relays to the server's 127.0.0.1 port (Unix sockets are not confined to a
network namespace). Nothing leaves the machine, and ports cannot clash with another
namespace's.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent

FORWARDER = """
import asyncio, sys
path, port = sys.argv[1], int(sys.argv[2])
async def pipe(reader, writer):
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
async def handle(reader, writer):
    try:
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        writer.close()
        return
    await asyncio.gather(pipe(reader, w2), pipe(r2, writer))
async def main():
    server = await asyncio.start_unix_server(handle, path)
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


def skip_reason() -> str | None:
    """Why a Ray cluster cannot run here (None: it can)."""
    if importlib.util.find_spec("ray") is None:
        return "ray is not installed (pip install 'cove[ray]')"
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        return "the ip and unshare commands are needed"
    name = f"cove-ray-probe-{secrets.token_hex(3)}"
    probe = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"ip netns is not permitted here: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def ray_start(*args: str, cpus: int = 16, memory_gb: int = 16) -> list[str]:
    """``ray start --block`` on 127.0.0.1. ``cpus`` and ``memory_gb`` are logical: an actor
    holds its ``num_cpus`` and ``memory`` for its whole life, idle or not."""
    return [str(BIN / "ray"), "start", "--block", "--disable-usage-stats",
            "--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus),
            "--memory", str(memory_gb * 1024**3), "--object-store-memory", str(80 * 1024**2),
            *args]  # fmt: skip


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it holds (what another process writes: no event to await)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached in {timeout} s"
        time.sleep(0.02)


class Cluster:
    """Processes in the namespace ``ns``, each a process group this program started."""

    def __init__(self, ns: str, root: Path) -> None:
        self.ns = ns
        self.root = root
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.clients: dict[str, httpx.Client] = {}

    @classmethod
    @contextlib.contextmanager
    def create(cls, prefix: str = "cove-ray") -> Iterator[Cluster]:
        """A fresh namespace ``<prefix>-<random>`` with its loopback up; on exit every
        process started in it is killed and the namespace and its folder removed."""
        ns = f"{prefix}-{secrets.token_hex(4)}"
        # Short: Ray's Unix socket paths live under it (at most 107 characters).
        root = Path(tempfile.mkdtemp(prefix="cr", dir="/tmp"))
        subprocess.run(["ip", "netns", "add", ns], check=True)
        cluster = cls(ns, root)
        try:
            subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"],
                           check=True)  # fmt: skip
            yield cluster
        finally:
            cluster.close()
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            shutil.rmtree(root, ignore_errors=True)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self.clients.clear()
        for name in reversed(list(self.procs)):  # the last started first
            self.kill(name)

    @property
    def client(self) -> httpx.Client:
        """The client of the server named ``server``."""
        return self.clients["server"]

    def spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, proc: bool = True
    ) -> None:
        """Run ``argv`` in the namespace, as PID 1 of a PID namespace of its own: when the
        ``unshare`` process dies, every process it started dies with it. ``proc``: with a
        /proc of its own (a Ray driver finds its node's raylet in /proc: not for it)."""
        full = ["ip", "netns", "exec", self.ns, "unshare", "--pid", "--fork", "--kill-child",
                *(["--mount-proc"] if proc else []), *argv]  # fmt: skip
        log = open(self.root / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            full, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **(env or {})},
        )  # fmt: skip
        log.close()

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def wait_log(self, name: str, text: str, timeout: float = 90.0) -> None:
        def seen() -> bool:
            proc = self.procs[name]
            assert proc.poll() is None, f"{name} exited:\n{self.log(name)[-3000:]}"
            return text in self.log(name)

        wait_until(seen, timeout, f"{name} saying {text!r}")

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)

    def pid(self, name: str) -> int | None:
        """The pid (in this program's PID namespace) of the program ``name`` runs: the
        child of its ``unshare``."""
        parent = self.procs[name].pid
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("PPid:"):
                    if int(line.split()[1]) == parent:
                        return int(entry.name)
                    break
        return None

    # -- Ray nodes and Cove servers -------------------------------------------------------
    def start_node(
        self, name: str, args: list[str], env: dict[str, str] | None = None, **sizes: int
    ) -> None:
        """``ray start`` with ``args`` (``--head ...`` or ``--address ...``), waited for."""
        self.spawn(name, ray_start(*args, **sizes), env)
        self.wait_log(name, "Ray runtime started")

    def start_head(
        self,
        port: int,
        resources: dict[str, float] | None = None,
        system_config: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        name: str = "head",
        **sizes: int,
    ) -> None:
        args = ["--head", "--port", str(port), "--temp-dir", str(self.root / "ray"),
                "--include-dashboard", "false"]  # fmt: skip
        if system_config:
            args += ["--system-config", json.dumps(system_config)]
        if resources:
            args += ["--resources", json.dumps(resources)]
        self.start_node(name, args, env, **sizes)

    def start_server(
        self,
        name: str,
        port: int,
        runtime: list[str],
        env: dict[str, str] | None = None,
        timeout: float = 90.0,
    ) -> httpx.Client:
        """``cove server`` on ``port`` in the namespace (``runtime``: e.g. ``["--runtime",
        "ray", "--ray-address", ...]``), data in ``<root>/<name>-data``, with a forwarder;
        returns the client that reaches it, once ``/healthz`` answers."""
        on_ray = "ray" in runtime
        self.spawn(
            name,
            [sys.executable, "-m", "cove.cli.main", "server", *runtime, "--port", str(port),
             "--data-dir", str(self.root / f"{name}-data")],
            env,
            proc=not on_ray,  # a Ray driver must see its node's raylet
        )  # fmt: skip
        client = self.forward(name, port)

        def healthy() -> bool:
            assert self.procs[name].poll() is None, self.log(name)[-3000:]
            try:
                return client.get("/healthz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout, f"{name} answering")
        return client

    def forward(self, name: str, port: int) -> httpx.Client:
        """A forwarder from ``<root>/<name>.sock`` to 127.0.0.1:``port`` in the namespace;
        returns a client through it (also ``self.clients[name]``)."""
        socket = self.root / f"{name}.sock"
        self.spawn(f"{name}-forward", [sys.executable, "-c", FORWARDER, str(socket), str(port)])
        self.wait_log(f"{name}-forward", "ready")
        client = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(socket)), base_url="http://cove", timeout=180.0
        )
        self.clients[name] = client
        return client

    def invoke(self, app: str, body: Any, wait: float = 120.0) -> Any:
        response = self.client.post(f"/applications/{app}", params={"wait": wait}, json=body)
        assert response.status_code == 200, response.text
        return response.json()
