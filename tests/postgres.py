"""A throw-away PostgreSQL server for tests: ``initdb`` + ``pg_ctl`` in a temporary folder.

The suite runs on SQLite by default. With ``COVE_TEST_DATABASE=postgresql`` every test gets
a fresh database on a server started once per session (``COVE_DATABASE_URL`` points at it,
so in-process engines and server subprocesses alike use it). Tests that need PostgreSQL
whatever the mode use the ``postgres_url`` fixture. Where PostgreSQL's binaries or psycopg
are missing, those tests skip and say how to enable them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

HOW = (
    "needs PostgreSQL's server binaries (initdb, pg_ctl) on the PATH and "
    "pip install 'cove[postgres]'"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missing() -> str | None:
    """Why PostgreSQL tests cannot run here, or None."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return f"psycopg is not installed; {HOW}"
    for binary in ("initdb", "pg_ctl"):
        if shutil.which(binary) is None:
            return f"{binary} not found; {HOW}"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
    return None


class PostgresServer:
    """One PostgreSQL server on 127.0.0.1 and a free port, owned by this process."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="cove-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user = "cove"
        # initdb refuses to run as root: run the server as the 'postgres' user then.
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _run(self, *cmd: str) -> None:
        done = subprocess.run(
            [*self._as, *cmd], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {done.stdout}\n{done.stderr}")

    def start(self) -> PostgresServer:
        self._run(
            "initdb", "-D", str(self.data), "-U", self.user, "--auth=trust",
            "--no-sync", "-E", "UTF8",
        )  # fmt: skip
        self._options = options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c max_connections=400 -c shared_buffers=64MB"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def restart(self) -> None:
        """``pg_ctl restart -m immediate``: every connection cut, crash recovery at start."""
        self._run(
            "pg_ctl", "-D", str(self.data), "-m", "immediate", "-l", str(self.root / "log"),
            "-w", "-t", "60", "restart",
        )  # fmt: skip

    def stop_now(self) -> None:
        """``pg_ctl stop -m immediate``, the server left down until :meth:`start_again`."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def start_again(self) -> None:
        """Start a server stopped with :meth:`stop_now` (its options as before)."""
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", self._options, "-l", str(self.root / "log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; returns its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
