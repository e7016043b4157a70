"""The local runtime: each container is a process group on this machine.

Each container runs in its own session (process group), so stopping it also stops
whatever the user's code spawned. Containers of a deployed module are forked from a
template process that imported the module once (``cove.runtime.template``), which makes a
cold start cost milliseconds; a function that needs GPUs, or a template that cannot start,
gets a freshly spawned process instead. Every pid is recorded under ``containers/`` in the
data folder; a server starting on the same folder first stops whatever a crashed server
left running, so no call runs twice at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import pickle
import shutil
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from cove.runtime.base import Container, ContainerRuntime, ContainerSpec
from cove.runtime.protocol import encode, read_frame
from cove.runtime.usage import folder_bytes, resident_bytes

log = logging.getLogger(__name__)
_MARKERS = (b"cove.runtime.worker", b"cove.runtime.template")
_EXIT_REPORT_WAIT = 2.0


class LocalContainer(Container):
    """A container process: spawned (``process``) or forked from a template (``pid``)."""

    def __init__(
        self,
        spec: ContainerSpec,
        pid: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        record: Path,
        tmp: Path,
        process: asyncio.subprocess.Process | None = None,
        template: Template | None = None,
    ) -> None:
        self.id = spec.container_id
        self.spec = spec
        self._pid = pid
        self._process = process
        self._template = template
        self._reader = reader
        self._writer = writer
        self._record = record
        self.tmp = tmp

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def exit_code(self) -> int | None:
        if self._process is not None:
            return self._process.returncode
        return self._template.exits.get(self._pid) if self._template else None

    def memory_bytes(self) -> int | None:
        return resident_bytes(self._pid)

    def disk_bytes(self) -> int | None:
        return folder_bytes(self.tmp)

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
            os.killpg(self._pid, signal.SIGKILL)
        self._writer.close()
        await self._reap()

    async def _reap(self) -> None:
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                await self._process.wait()
        elif self._template is not None:
            await self._template.wait_exit(self._pid, _EXIT_REPORT_WAIT)
        self._record.unlink(missing_ok=True)
        shutil.rmtree(self.tmp, ignore_errors=True)  # the container's ephemeral disk


class Template:
    """A process that imported one deployed module and forks containers of it."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        orders: socket.socket,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.process = process
        self.orders = orders
        self.reader = reader
        self.writer = writer
        self.exits: dict[int, int] = {}
        self._forks: dict[str, asyncio.Future[int]] = {}
        self._exit_events: dict[int, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None
        self.alive = True

    def listen(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        while True:
            msg = await read_frame(self.reader)
            if msg is None:
                break
            if msg[0] == "forked":
                future = self._forks.pop(msg[1], None)
                if future is not None and not future.done():
                    future.set_result(int(msg[2]))
            elif msg[0] == "exit":
                self.exits[msg[1]] = int(msg[2])
                self._exit_event(msg[1]).set()
        self.alive = False
        for future in self._forks.values():
            if not future.done():
                future.set_exception(ConnectionError("the template process stopped"))
        for event in self._exit_events.values():
            event.set()

    def _exit_event(self, pid: int) -> asyncio.Event:
        return self._exit_events.setdefault(pid, asyncio.Event())

    async def fork(self, order: tuple[Any, ...], channel: socket.socket) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._forks[order[1]] = future
        # A few hundred bytes with one descriptor: the blocking send does not wait.
        socket.send_fds(self.orders, [pickle.dumps(order)], [channel.fileno()])
        return await asyncio.wait_for(future, 30)

    async def wait_exit(self, pid: int, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._exit_event(pid).wait(), timeout)
        self._exit_events.pop(pid, None)

    async def stop(self) -> None:
        self.alive = False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await self.process.wait()
        self.orders.close()
        self.writer.close()
        if self._task is not None:
            self._task.cancel()


class LocalProcessRuntime(ContainerRuntime):
    """Containers as local processes, with logs under ``logs/``."""

    def __init__(self, data_dir: Path, use_templates: bool = True) -> None:
        self.records = data_dir / "containers"
        self.logs = data_dir / "logs"
        self.tmp = data_dir / "tmp"
        for folder in (self.records, self.logs, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)
        self.use_templates = use_templates
        self._cores = sorted(os.sched_getaffinity(0))
        self._next_core = 0
        self.templates: dict[tuple[Path, str], Template] = {}
        self._template_locks: dict[tuple[Path, str], asyncio.Lock] = {}

    async def start(self, spec: ContainerSpec) -> Container:
        tmp = self.tmp / spec.container_id
        tmp.mkdir(parents=True, exist_ok=True)
        # Each container gets a fresh temporary folder of its own, removed when it ends.
        env = {**spec.env, "TMPDIR": str(tmp), "TMP": str(tmp), "TEMP": str(tmp)}
        env["COVE_CPU_CORES"] = ",".join(str(c) for c in self._pick_cores(spec.cpu))
        log_path = self.logs / f"{spec.container_id}.log"
        template = await self._template(spec) if spec.fork and self.use_templates else None
        parent, child = socket.socketpair()
        process = None
        try:
            if template is not None:
                order = ("fork", spec.container_id, spec.function, env, str(log_path))
                pid = await template.fork(order, child)
            else:
                process = await self._spawn(spec, env, log_path, child)
                pid = process.pid
        finally:
            child.close()
        record = self.records / str(pid)
        record.write_text(spec.container_id)
        reader, writer = await asyncio.open_unix_connection(sock=parent, limit=1 << 20)
        return LocalContainer(spec, pid, reader, writer, record, tmp, process, template)

    def _pick_cores(self, cpu: float) -> list[int]:
        """Cores for a container of ``cpu`` CPUs, taken round-robin so containers spread."""
        count = min(len(self._cores), max(1, math.ceil(cpu)))
        start = self._next_core
        self._next_core = (start + count) % len(self._cores)
        return [self._cores[(start + i) % len(self._cores)] for i in range(count)]

    async def _spawn(
        self, spec: ContainerSpec, env: dict[str, str], log_path: Path, channel: socket.socket
    ) -> asyncio.subprocess.Process:
        full = {**os.environ, **env, "COVE_CHANNEL_FD": str(channel.fileno())}
        full["PYTHONPATH"] = _python_path(spec.code_dir, full)
        full["COVE_CODE_DIR"] = str(spec.code_dir)
        python = spec.python or sys.executable
        with open(log_path, "ab") as log_file:
            return await asyncio.create_subprocess_exec(
                python, "-m", "cove.runtime.worker", spec.module, spec.function,
                cwd=str(spec.cwd or spec.code_dir), env=full, stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file, stderr=log_file, pass_fds=(channel.fileno(),),
                start_new_session=True,
            )  # fmt: skip

    async def _template(self, spec: ContainerSpec) -> Template | None:
        """The running template of the spec's module, started on first use; None (spawn
        instead) if it cannot start."""
        key = (spec.code_dir, spec.module)
        lock = self._template_locks.setdefault(key, asyncio.Lock())
        async with lock:
            template = self.templates.get(key)
            if template is not None and template.alive:
                return template
            try:
                template = await self._start_template(spec)
            except Exception as exc:
                log.warning("no template for %s (%s): containers are spawned", spec.module, exc)
                return None
            self.templates[key] = template
            return template

    async def _start_template(self, spec: ContainerSpec) -> Template:
        orders_parent, orders_child = socket.socketpair()
        reports_parent, reports_child = socket.socketpair()
        env = {
            **os.environ,
            "COVE_TEMPLATE_ORDERS_FD": str(orders_child.fileno()),
            "COVE_TEMPLATE_REPORTS_FD": str(reports_child.fileno()),
        }
        env["PYTHONPATH"] = _python_path(spec.code_dir, env)
        log_path = self.logs / f"template-{spec.module}-{spec.code_dir.name[:12]}.log"
        try:
            with open(log_path, "ab") as log_file:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "cove.runtime.template", spec.module,
                    cwd=str(spec.code_dir), env=env, stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_file, stderr=log_file,
                    pass_fds=(orders_child.fileno(), reports_child.fileno()),
                    start_new_session=True,
                )  # fmt: skip
        finally:
            orders_child.close()
            reports_child.close()
        (self.records / str(process.pid)).write_text(f"template {spec.module}")
        reader, writer = await asyncio.open_unix_connection(sock=reports_parent)
        template = Template(process, orders_parent, reader, writer)
        first = await asyncio.wait_for(read_frame(reader), 120)
        if first is None or first[0] != "ready":
            await template.stop()
            detail = first[1].get("message") if first else "it exited"
            raise RuntimeError(f"the template did not start: {detail}")
        template.listen()
        return template

    async def close(self) -> None:
        for template in self.templates.values():
            await template.stop()
            (self.records / str(template.process.pid)).unlink(missing_ok=True)
        self.templates.clear()

    def reap_orphans(self) -> int:
        stopped = 0
        for record in self.records.iterdir():
            try:
                pid = int(record.name)
            except ValueError:
                record.unlink(missing_ok=True)
                continue
            if _is_ours(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                    stopped += 1
            record.unlink(missing_ok=True)
        for folder in self.tmp.iterdir():  # temporary folders of containers now gone
            shutil.rmtree(folder, ignore_errors=True)
        if stopped:
            log.warning("stopped %d process(es) left by a previous server", stopped)
        return stopped


def _python_path(code_dir: Path, env: dict[str, str]) -> str:
    return os.pathsep.join(p for p in (str(code_dir), env.get("PYTHONPATH", "")) if p)


def _is_ours(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return any(marker in cmdline for marker in _MARKERS)
