"""The Ray runtime on a real two-node Ray cluster, inside a network namespace of its own.

The test creates a network namespace with only a loopback interface, starts a Ray head
node (resource ``region:us-east-1``) and a second node (``region:eu-west-1``) in it, each
in a PID namespace of its own (so SIGKILL of one process ends the whole node), and a
``cove server --runtime ray`` in it too. It talks to the server through a Unix socket that
a small forwarder inside the namespace relays to the server's 127.0.0.1 port (Unix
sockets are not confined to a network namespace). Nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import wait_until

pytestmark = pytest.mark.slow
APPS = Path(__file__).resolve().parents[1] / "apps" / "ray_apps.py"
BIN = Path(sys.executable).parent
GCS_PORT = 6391
SERVER_PORT = 8907

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


def _skip_reason() -> str | None:
    try:
        import ray  # noqa: F401
    except ImportError:
        return "ray is not installed (pip install 'cove[ray]')"
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        return "the ip and unshare commands are needed"
    name = f"cove-ray-probe-{secrets.token_hex(3)}"
    probe = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"ip netns is not permitted here: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


class Cluster:
    """Processes in the namespace ``ns``, each a process group this test started."""

    def __init__(self, ns: str, root: Path) -> None:
        self.ns = ns
        self.root = root
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.socket = root / "cove.sock"
        self.client = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.socket)),
            base_url="http://cove",
            timeout=180.0,
        )

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

    def invoke(self, app: str, body: Any, wait: float = 120.0) -> Any:
        response = self.client.post(f"/applications/{app}", params={"wait": wait}, json=body)
        assert response.status_code == 200, response.text
        return response.json()


def _ray_start(*args: str) -> list[str]:
    return [str(BIN / "ray"), "start", "--block", "--disable-usage-stats",
            "--node-ip-address", "127.0.0.1", "--num-cpus", "16",
            "--memory", str(16 * 1024**3), "--object-store-memory", str(80 * 1024**2),
            *args]  # fmt: skip


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    ns = f"cove-ray-{secrets.token_hex(4)}"
    # Short: Ray's Unix socket paths live under it (at most 107 characters).
    root = Path(tempfile.mkdtemp(prefix="cr", dir="/tmp"))
    subprocess.run(["ip", "netns", "add", ns], check=True)
    c = Cluster(ns, root)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        system = {"health_check_period_ms": 500, "health_check_failure_threshold": 3}
        c.spawn(
            "head",
            _ray_start("--head", "--port", str(GCS_PORT), "--temp-dir", str(root / "ray"),
                       "--include-dashboard", "false", "--system-config", json.dumps(system),
                       "--resources", json.dumps({"region:us-east-1": 1})),
            {"COVE_TEST_NODE": "head"},
        )  # fmt: skip
        c.wait_log("head", "Ray runtime started")
        c.spawn(
            "region",
            _ray_start("--address", f"127.0.0.1:{GCS_PORT}",
                       "--resources", json.dumps({"region:eu-west-1": 1})),
            {"COVE_TEST_NODE": "region"},
        )  # fmt: skip
        c.wait_log("region", "Ray runtime started")
        c.spawn(
            "server",
            [sys.executable, "-m", "cove.cli.main", "server", "--runtime", "ray",
             "--ray-address", f"127.0.0.1:{GCS_PORT}", "--port", str(SERVER_PORT),
             "--data-dir", str(root / "data")],
            {"COVE_CONTAINER_IDLE_TIMEOUT": "600"},
            proc=False,
        )  # fmt: skip
        c.spawn("forward", [sys.executable, "-c", FORWARDER, str(c.socket), str(SERVER_PORT)])
        c.wait_log("forward", "ready")

        def healthy() -> bool:
            assert c.procs["server"].poll() is None, c.log("server")[-3000:]
            try:
                return c.client.get("/healthz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 90, "the server answering")
        response = c.client.put("/secrets/RAY_TEST_SECRET", json={"value": "s3cret"})
        assert response.status_code in (200, 201, 204), response.text
        code = {"code": ("ray_apps.py", APPS.read_bytes(), "text/x-python")}
        response = c.client.post("/applications", files=code)
        assert response.status_code == 201, response.text
        yield c
    finally:
        c.client.close()
        for name in ("forward", "server", "region", "head"):
            c.kill(name)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_a_region_pinned_function_runs_only_on_that_regions_node(cluster: Cluster) -> None:
    started = time.monotonic()
    results = cluster.invoke("pinned", 6)
    assert len(results) == 6
    assert {r["node"] for r in results} == {"region"}, results
    assert len({r["node_id"] for r in results}) == 1
    assert all(r["secret"] == "s3cret" for r in results)  # the secret it lists, as env
    assert time.monotonic() - started < 120


def test_a_map_spreads_over_both_nodes_with_state_and_progress(cluster: Cluster) -> None:
    out = cluster.invoke("spread", 8)
    items = out["items"]
    assert [int(r["i"]) for r in items] == list(range(8))  # order kept
    assert {r["node"] for r in items} == {"head", "region"}, items
    assert len({r["node_id"] for r in items}) == 2
    assert out["extra"]["i"] == "100"  # a future run and collected in the container
    assert out["asked"] == 8  # request state written and read back over the channel
    assert all(r["secret"] == "" for r in items)  # secrets only where a function lists them


def test_memory_is_enforced_by_coves_monitor_and_timeouts_replace_the_actor(
    cluster: Cluster,
) -> None:
    started = time.monotonic()
    response = cluster.client.post("/applications/greedy", params={"wait": 120}, json=1300)
    assert response.status_code == 500, response.text
    assert response.json()["error"]["reason"] == "out_of_memory"
    assert time.monotonic() - started < 45  # stopped long before its 60 s sleep ends

    response = cluster.client.post("/applications/nap", params={"wait": 120}, json=30)
    assert response.status_code == 500, response.text
    assert response.json()["error"]["reason"] == "function_timeout"
    after = cluster.invoke("nap", 0)  # a fresh actor serves the next call
    assert after["node"] in ("head", "region")


def test_a_node_killed_mid_request_has_its_calls_rerun_on_the_other(cluster: Cluster) -> None:
    marks = cluster.root / "marks"
    marks.mkdir()
    response = cluster.client.post("/applications/survive", json={"folder": str(marks), "n": 6})
    assert response.status_code == 200, response.text
    request_id = response.json()["request_id"]

    def on_both() -> bool:
        nodes = {p.name.split("-")[1] for p in marks.iterdir()}
        return nodes == {"head", "region"}

    wait_until(on_both, 120, "items running on both nodes")
    on_region = {p.name.split("-")[0] for p in marks.iterdir() if "-region-" in p.name}
    cluster.kill("region")  # SIGKILL: raylet, workers and all, mid-request
    response = cluster.client.get(
        f"/applications/survive/requests/{request_id}/output", params={"wait": 150}
    )
    assert response.status_code == 200, response.text
    results = response.json()
    assert [int(r["i"]) for r in results] == list(range(6))
    assert {r["node"] for r in results} == {"head"}, results
    # The items that had begun on the killed node ran again, on the head node.
    rerun = {p.name.split("-")[0] for p in marks.iterdir() if "-head-" in p.name}
    assert on_region and on_region <= rerun
