"""The Ray actor that is one container: Cove's worker loop inside a Ray worker process.

The server creates one :class:`ContainerActor` per container (``cove.runtime.ray``). Its
constructor writes the deployed code onto the node (once per node and code version),
connects back to the server's container listener over TCP, sends the container's token and
starts :func:`cove.runtime.worker.run_worker` on that socket in a thread. From then on the
channel carries exactly the frames of the local runtime's socketpair, so calls, child
calls, state, progress and logs work unchanged. When the server closes the channel the
worker ends the process (``os._exit``), and Ray sees the actor gone.

This module is imported on the Ray nodes: it needs Cove and Ray installed there, nothing
of the server.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from cove.runtime.usage import folder_bytes, resident_bytes
from cove.sdk.bundle import safe_name

ROOT = Path(tempfile.gettempdir()) / "cove-ray"
NODE_ID_ENV = "COVE_RAY_NODE_ID"


class ContainerActor:
    """One container. Methods other than the constructor answer the server's monitor."""

    def __init__(
        self,
        address: tuple[str, int],
        token: bytes,
        module: str,
        function: str,
        code_key: str,
        files: dict[str, bytes],
        container_id: str,
        env: dict[str, str] | None = None,
        workdir: str | None = None,
    ) -> None:
        import ray

        self.node_id: str = ray.get_runtime_context().get_node_id()
        code_dir = materialize(code_key, files)
        _sweep_tmp()
        # Unique: container ids repeat across servers sharing a node.
        self.tmp = ROOT / "tmp" / f"{container_id}-{secrets.token_hex(6)}"
        self.tmp.mkdir(parents=True, exist_ok=True)
        # Held while the process lives: a folder whose lock is free belongs to no one.
        self._lock = os.open(self.tmp / ".cove-lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.tmp.mkdir(parents=True, exist_ok=True)  # a sweep may have raced the lock
        # Its own process: the secrets and image variables are this container's alone.
        os.environ.update(env or {})
        os.environ.update(
            {
                NODE_ID_ENV: self.node_id,
                "COVE_CODE_DIR": str(code_dir),
                "TMPDIR": str(self.tmp),
                "TMP": str(self.tmp),
                "TEMP": str(self.tmp),
            }
        )
        tempfile.tempdir = None  # recomputed from TMPDIR on next use
        sys.path.insert(0, str(code_dir))
        os.chdir(workdir or code_dir)
        sock = socket.create_connection(address, timeout=30)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.sendall(token)

        from cove.runtime.worker import run_worker

        threading.Thread(
            target=run_worker, args=(sock, module, function), name="cove-worker", daemon=True
        ).start()

    def info(self) -> tuple[str, int]:
        """The node it runs on and its process id (answers once the constructor is done)."""
        return self.node_id, os.getpid()

    def usage(self, disk: bool) -> tuple[int | None, int | None]:
        """Resident memory of the process, and (when ``disk``) bytes in its temporary
        folder: the server stops it when either goes over the function's limits."""
        return resident_bytes(), (folder_bytes(self.tmp) if disk else None)


def materialize(code_key: str, files: dict[str, bytes]) -> Path:
    """The deployed code on this node, written once per code version (atomically)."""
    target = ROOT / "code" / code_key
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{code_key}-", dir=target.parent))
    try:
        for name, data in files.items():  # relative POSIX paths: a bundle's subfolders too
            path = staging.joinpath(*safe_name(name).split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        staging.rename(target)
    except OSError:  # another container of the same code won the race
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _sweep_tmp() -> None:
    """Remove temporary folders of containers whose process is gone (a killed actor
    cannot clean up after itself): their lock is free."""
    folder = ROOT / "tmp"
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        try:
            fd = os.open(entry / ".cove-lock", os.O_RDWR)
        except OSError:
            continue  # being created right now, or not a container's folder
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # alive
        finally:
            os.close(fd)
        shutil.rmtree(entry, ignore_errors=True)


def remote_class(**options: Any) -> Any:
    """The actor class as a Ray remote class."""
    import ray

    return ray.remote(**options)(ContainerActor) if options else ray.remote(ContainerActor)
