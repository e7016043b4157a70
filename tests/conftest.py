"""Fixtures shared by every test layer."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.postgres import PostgresServer
from tests.postgres import missing as postgres_missing
from tests.rayhead import RayHead
from tests.rayhead import missing as ray_missing

APPS = Path(__file__).parent / "apps"


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    """Poll ``predicate`` until it holds: for what another process writes (no event to await)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what or 'condition'} not reached in {timeout} s"
        time.sleep(0.02)


def wait_for_file(path: Path, timeout: float = 60.0) -> None:
    wait_until(path.exists, timeout, f"{path} to appear")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A real ``cove server`` subprocess on a free port."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.args = args or []  # more options of `cove server`
        self.env = {**os.environ, **(env or {})}
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "server.log"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "cove.cli.main",
            "server",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            *self.args,
        ]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # waiting for a process to start listening: nothing to await
        raise RuntimeError(f"server did not start: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: the crash case."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120)

    def deploy(self, path: Path) -> dict[str, object]:
        with self.client() as c:
            r = c.post("/applications", files={"code": (path.name, path.read_bytes())})
            r.raise_for_status()
            data: dict[str, object] = r.json()
            return data


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[type[ServerProcess]]:
    started: list[ServerProcess] = []

    class Tracked(ServerProcess):
        def start(self, timeout: float = 60.0) -> ServerProcess:
            started.append(self)
            return super().start(timeout)

    yield Tracked
    for server in started:
        server.kill()
    _kill_workers(tmp_path)


def _kill_workers(root: Path) -> None:
    """Stop container processes a test's servers left (their records are under root)."""
    for record in root.rglob("containers/*"):
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            os.killpg(int(record.name), signal.SIGKILL)


# -- the database backend (tests/postgres.py) -------------------------------------------------
BACKEND = os.environ.get("COVE_TEST_DATABASE", "sqlite")


@pytest.fixture(scope="session")
def _postgres_server() -> Iterator[PostgresServer]:
    why = postgres_missing()
    if why is not None:
        if BACKEND == "postgresql":
            pytest.fail(f"COVE_TEST_DATABASE=postgresql but {why}")
        pytest.skip(why)
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(_postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test (skips where there is none)."""
    url = _postgres_server.create_database()
    yield url
    _postgres_server.drop_database(url)


@pytest.fixture(scope="module", autouse=True)
def _module_databases(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """The databases this module's tests made, dropped when the module is done: an engine
    of a module-scoped fixture keeps using the one its first test made."""
    made: list[str] = []
    yield made
    if made:
        server = request.getfixturevalue("_postgres_server")
        for url in made:
            server.drop_database(url)


@pytest.fixture(autouse=True)
def _database_backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, _module_databases: list[str]
) -> None:
    """With COVE_TEST_DATABASE=postgresql, every engine and server of the test, in process or
    not, stores its journal in a fresh PostgreSQL database instead of SQLite."""
    if BACKEND != "postgresql" or "sqlite_only" in request.keywords:
        return
    url = request.getfixturevalue("_postgres_server").create_database()
    _module_databases.append(url)
    monkeypatch.setenv("COVE_DATABASE_URL", url)


# -- the container runtime (tests/rayhead.py) ------------------------------------------------
RUNTIME = os.environ.get("COVE_TEST_RUNTIME", "local")


@pytest.fixture(scope="session")
def _ray_head() -> Iterator[RayHead]:
    why = ray_missing()
    if why is not None:
        pytest.fail(f"COVE_TEST_RUNTIME=ray but {why}")
    # Logical CPUs and memory (a Ray actor holds its num_cpus and memory for its whole life,
    # idle or waiting on its children): enough for every pool of a test at its maximum, as
    # docs/ray.md asks of a cluster without an autoscaler. The chaos workload nests three
    # deep under four pools of Settings' default max_containers each.
    from cove.engine.settings import Settings

    cpus = 8 * Settings().default_max_containers
    head = RayHead(cpus=cpus, memory_gb=cpus).start()
    yield head
    head.stop()


@pytest.fixture(scope="session", autouse=True)
def _runtime_backend(request: pytest.FixtureRequest) -> Iterator[None]:
    """With COVE_TEST_RUNTIME=ray, every engine and server of the session, in process or not
    and whatever its fixture's scope, places its containers as actors on the session's Ray
    head instead of local processes."""
    if RUNTIME != "ray":
        yield
        return
    head = request.getfixturevalue("_ray_head")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COVE_RUNTIME", "ray")
        patch.setenv("COVE_RAY_ADDRESS", head.address)
        yield


@pytest.fixture(autouse=True)
def _local_runtime_only(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests marked local_runtime_only keep local processes whatever COVE_TEST_RUNTIME says."""
    if "local_runtime_only" in request.keywords:
        monkeypatch.setenv("COVE_RUNTIME", "local")


# -- an in-process server with test applications deployed --------------------------------------
@contextlib.contextmanager
def deployed_client(data_dir: Path, *apps: str, **settings: Any) -> Iterator[TestClient]:
    """A server in this process on ``data_dir`` (with ``settings``), each of ``apps`` (files
    in tests/apps) deployed; the engine is ``client.app.state.engine``."""
    from cove.engine.settings import Settings
    from cove.server import create_app

    with TestClient(create_app(Settings(data_dir=data_dir, **settings))) as client:
        for name in apps:
            path = APPS / name
            r = client.post("/applications", files={"code": (path.name, path.read_bytes())})
            assert r.status_code == 201, r.text
        yield client
