"""The local runtime: each container is a process group on this machine.

Each container starts in its own session (process group), so stopping it also stops
whatever the user's code spawned. Its pid is recorded under ``containers/`` in the data
folder; a server starting on the same folder first stops any container that a crashed
server left running, so no call runs twice at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from cove.runtime.base import Container, ContainerRuntime, ContainerSpec
from cove.runtime.protocol import encode, read_frame

log = logging.getLogger(__name__)
_MARKER = "cove.runtime.worker"


class LocalContainer(Container):
    def __init__(
        self,
        spec: ContainerSpec,
        process: asyncio.subprocess.Process,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        record: Path,
        tmp: Path,
    ) -> None:
        self.id = spec.container_id
        self.spec = spec
        self._process = process
        self._reader = reader
        self._writer = writer
        self._record = record
        self.tmp = tmp

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def exit_code(self) -> int | None:
        return self._process.returncode

    def memory_bytes(self) -> int | None:
        try:
            status = Path(f"/proc/{self._process.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return None

    def send(self, msg: tuple[Any, ...]) -> None:
        if not self._writer.is_closing():
            self._writer.write(encode(msg))

    async def recv(self) -> tuple[Any, ...] | None:
        msg = await read_frame(self._reader)
        if msg is None:
            await self._reap()
        return msg

    async def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._writer.close()
        await self._reap()

    def disk_bytes(self) -> int | None:
        total = 0
        for root, _dirs, files in os.walk(self.tmp):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(root, name)).st_size
        return total

    async def _reap(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            await self._process.wait()
        self._record.unlink(missing_ok=True)
        shutil.rmtree(self.tmp, ignore_errors=True)  # the container's ephemeral disk


class LocalProcessRuntime(ContainerRuntime):
    """Containers as local worker processes, with logs under ``logs/``."""

    def __init__(self, data_dir: Path) -> None:
        self.records = data_dir / "containers"
        self.logs = data_dir / "logs"
        self.tmp = data_dir / "tmp"
        for folder in (self.records, self.logs, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)

    async def start(self, spec: ContainerSpec) -> Container:
        parent, child = socket.socketpair()
        tmp = self.tmp / spec.container_id
        tmp.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **spec.env, "COVE_CHANNEL_FD": str(child.fileno())}
        # Each container gets a fresh temporary folder of its own, removed when it ends.
        env.update(TMPDIR=str(tmp), TMP=str(tmp), TEMP=str(tmp))
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(spec.code_dir), env.get("PYTHONPATH", "")) if p
        )
        log_file = open(self.logs / f"{spec.container_id}.log", "ab")  # noqa: SIM115
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                _MARKER,
                spec.module,
                spec.function,
                cwd=str(spec.code_dir),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                pass_fds=(child.fileno(),),
                start_new_session=True,
            )
        finally:
            child.close()
            log_file.close()
        record = self.records / str(process.pid)
        record.write_text(spec.container_id)
        reader, writer = await asyncio.open_unix_connection(sock=parent, limit=1 << 20)
        return LocalContainer(spec, process, reader, writer, record, tmp)

    def reap_orphans(self) -> int:
        stopped = 0
        for record in self.records.iterdir():
            try:
                pid = int(record.name)
            except ValueError:
                record.unlink(missing_ok=True)
                continue
            if _is_worker(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                    stopped += 1
            record.unlink(missing_ok=True)
        for folder in self.tmp.iterdir():  # temporary folders of containers now gone
            shutil.rmtree(folder, ignore_errors=True)
        if stopped:
            log.warning("stopped %d container(s) left by a previous server", stopped)
        return stopped


def _is_worker(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return _MARKER.encode() in cmdline
