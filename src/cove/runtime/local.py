"""The local runtime: each container is a process group on this machine.

Each container runs in its own session (process group), and its environment carries a
token naming the data folder, the server run and the container
(``cove.runtime.descendants``), which whatever the user's code spawns inherits: stopping a
container kills its group and every process with its token, even one that left the group
(``setsid``). Containers of a deployed module are forked from a template process that
imported the module once (``cove.runtime.template``), which makes a cold start cost
milliseconds; a function that needs GPUs, or a template that cannot start, gets a freshly
spawned process instead. Every pid is recorded under ``containers/`` in the data folder; a
server starting on the same folder first stops whatever a crashed server left running (the
recorded groups, and every process with a token of the folder from another run), so no
call runs twice at the same time.
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
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cove.runtime import descendants
from cove.runtime.base import Container, ContainerRuntime, ContainerSpec
from cove.runtime.protocol import encode, read_frame
from cove.runtime.usage import folder_bytes, resident_bytes

log = logging.getLogger(__name__)
_MARKERS = (b"cove.runtime.worker", b"cove.runtime.template")
_EXIT_REPORT_WAIT = 2.0
#: How long stopping a process waits for its exit to be reported once it was killed (or had
#: ended): a server's shutdown must not hang on a child it cannot see go.
_KILLED_EXIT_WAIT = 10.0


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
        token: str | None = None,
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
        self._token = token  # in the environment of its processes (cove.runtime.descendants)
        self._swept = False

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
        _kill(self._pid)
        self._writer.close()
        await self._reap()

    async def _reap(self) -> None:
        if not self._swept and self._token is not None:
            # What its code started, in its group or not (setsid), goes with it: killed
            # or ended on its own, a container leaves nothing running.
            self._swept = True
            await asyncio.to_thread(descendants.sweep, self._token.__eq__)
        if self._process is not None:
            await _wait_killed(self._process, f"container {self.id}")
        elif self._template is not None:
            await self._template.wait_exit(self._pid, _EXIT_REPORT_WAIT)
        self._record.unlink(missing_ok=True)
        shutil.rmtree(self.tmp, ignore_errors=True)  # the container's ephemeral disk


def _kill(pid: int) -> None:
    """SIGKILL ``pid``'s process group, and ``pid`` itself (a fork not yet in a session of
    its own)."""
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)


async def _wait_killed(process: asyncio.subprocess.Process, what: str) -> None:
    try:
        async with asyncio.timeout(_KILLED_EXIT_WAIT):
            await process.wait()
    except ProcessLookupError:
        pass
    except TimeoutError:
        log.warning(
            "%s (pid %d) was killed but its exit was not reported within %g s: not waiting",
            what,
            process.pid,
            _KILLED_EXIT_WAIT,
        )


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
        async with asyncio.timeout(30):
            return await future

    async def wait_exit(self, pid: int, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._exit_event(pid).wait()
        self._exit_events.pop(pid, None)

    async def stop(self) -> None:
        self.alive = False
        _kill(self.process.pid)
        await _wait_killed(self.process, "a template")
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
        # Tokens of this run's processes begin with it (<folder>:<run>, descendants.py).
        self.run = descendants.new_run(data_dir)
        self._folder = descendants.folder_key(data_dir)
        self._cores = sorted(os.sched_getaffinity(0))
        self._next_core = 0
        # One template per deployed code (folder, module): started at deploy (prepare) or
        # by its first container, stopped once no latest version uses the code (retain).
        self.templates: dict[tuple[Path, str], Template] = {}
        self.template_starts: dict[tuple[Path, str], asyncio.Task[Template | None]] = {}
        self._forking: Counter[tuple[Path, str]] = Counter()  # containers forking from each
        self._no_template: set[tuple[Path, str]] = set()  # its template failed to import it

    async def start(self, spec: ContainerSpec) -> Container:
        tmp = self.tmp / spec.container_id
        tmp.mkdir(parents=True, exist_ok=True)
        # Each container gets a fresh temporary folder of its own, removed when it ends.
        env = {**spec.env, "TMPDIR": str(tmp), "TMP": str(tmp), "TEMP": str(tmp)}
        env["COVE_CPU_CORES"] = ",".join(str(c) for c in self._pick_cores(spec.cpu))
        token = descendants.container_token(self.run, spec.container_id)
        env[descendants.TOKEN] = token  # inherited by all it starts: see kill()
        log_path = self.logs / f"{spec.container_id}.log"
        parent, child = socket.socketpair()
        process = template = None
        try:
            forked = await self._fork(spec, env, log_path, child) if self._forks(spec) else None
            if forked is not None:
                template, pid = forked
            else:
                process = await self._spawn(spec, env, log_path, child)
                pid = process.pid
        finally:
            child.close()
        record = self.records / str(pid)
        reader, writer = await asyncio.open_unix_connection(sock=parent, limit=1 << 20)
        container = LocalContainer(spec, pid, reader, writer, record, tmp, process, template, token)
        try:
            record.write_text(spec.container_id)
        except OSError:  # a full disk: a container without its record must not live on
            await container.kill()
            raise
        return container

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

    def _forks(self, spec: ContainerSpec) -> bool:
        """Whether containers like ``spec`` are forked from a template."""
        return spec.fork and self.use_templates

    async def prepare(self, spec: ContainerSpec) -> None:
        """Start the template of the spec's code now, so its first container is a fork."""
        if self._forks(spec):
            await self._template(spec)

    async def retain(self, specs: Iterable[ContainerSpec]) -> None:
        """Stop the templates (running or starting) of code that none of ``specs`` uses and
        that no container is being forked from right now."""
        keep = {_template_key(spec) for spec in specs}
        for key in [k for k in self.template_starts if k not in keep and not self._forking[k]]:
            self.template_starts.pop(key).cancel()  # no container waits for it
        for key in [k for k in self.templates if k not in keep and not self._forking[k]]:
            await self._drop(self.templates.pop(key))
        self._no_template &= keep

    async def _fork(
        self, spec: ContainerSpec, env: dict[str, str], log_path: Path, channel: socket.socket
    ) -> tuple[Template, int] | None:
        """Fork a container from the template of its code: the running one, the one starting
        (prepare's, or another container's), else one started now. None: there is none (the
        caller spawns the container)."""
        key = _template_key(spec)
        self._forking[key] += 1  # retain() leaves it alone meanwhile
        try:
            template = await self._template(spec)
            if template is None:
                return None
            order = ("fork", spec.container_id, spec.function, env, str(log_path))
            return template, await template.fork(order, channel)
        finally:
            self._forking[key] -= 1
            if self._forking[key] <= 0:
                del self._forking[key]

    async def _template(self, spec: ContainerSpec) -> Template | None:
        """The running template of the spec's code, or the one starting (awaited), or one
        started now; None (spawn instead) if it cannot start."""
        key = _template_key(spec)
        template = self.templates.get(key)
        if template is not None and template.alive:
            return template
        if key in self._no_template:
            return None
        task = self.template_starts.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._launch(key, spec))
            self.template_starts[key] = task
        try:
            # Shielded: a container start given up (its pool stopped) does not stop it.
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and not (current is not None and current.cancelling()):
                return None  # retain() gave it up
            raise

    async def _launch(self, key: tuple[Path, str], spec: ContainerSpec) -> Template | None:
        try:
            old = self.templates.pop(key, None)
            if old is not None:
                await self._drop(old)  # it stopped (killed, crashed): forget it
            template = await self._start_template(spec)
        except TemplateFailed as exc:
            # The code cannot be imported without its container's environment (a secret
            # read at import, say): its containers are spawned from now on.
            log.warning("no template for %s (%s): containers are spawned", spec.module, exc)
            self._no_template.add(key)
            return None
        except Exception as exc:
            log.warning("no template for %s (%s): containers are spawned", spec.module, exc)
            return None
        finally:
            if self.template_starts.get(key) is asyncio.current_task():
                del self.template_starts[key]
        self.templates[key] = template
        return template

    async def _drop(self, template: Template) -> None:
        await template.stop()
        (self.records / str(template.process.pid)).unlink(missing_ok=True)

    async def _start_template(self, spec: ContainerSpec) -> Template:
        orders_parent, orders_child = socket.socketpair()
        reports_parent, reports_child = socket.socketpair()
        env = {
            **os.environ,
            "COVE_TEMPLATE_ORDERS_FD": str(orders_child.fileno()),
            "COVE_TEMPLATE_REPORTS_FD": str(reports_child.fileno()),
            # Room for the token each forked container writes over it (descendants.retag).
            descendants.TOKEN: descendants.template_token(self.run),
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
        try:
            async with asyncio.timeout(120):
                first = await read_frame(reader)
        except BaseException:  # too slow, or given up (retain): it must not linger
            await self._drop(template)
            raise
        if first is None or first[0] != "ready":
            await self._drop(template)
            if first is None:
                raise RuntimeError("the template did not start: it exited")
            raise TemplateFailed(f"the template did not start: {first[1].get('message')}")
        template.listen()
        return template

    async def close(self) -> None:
        for task in list(self.template_starts.values()):
            task.cancel()
        await asyncio.gather(*self.template_starts.values(), return_exceptions=True)
        self.template_starts.clear()
        for template in self.templates.values():
            await self._drop(template)
        self.templates.clear()
        run = self.run + ":"  # whatever of this run is left (a container still starting)
        await asyncio.to_thread(descendants.sweep, lambda t: t.startswith(run))

    def reap_orphans(self) -> int:
        """Stop what servers that ran on this data folder before left running: the process
        groups recorded under ``containers/``, and every process with a token of the folder
        from another run (what containers started, in their groups or not). Processes of
        this run (a template already starting) and of other data folders stay."""
        stopped = 0
        for record in self.records.iterdir():
            try:
                pid = int(record.name)
            except ValueError:
                record.unlink(missing_ok=True)
                continue
            mine = _is_ours(pid, self._folder, self.run)
            if mine is None:
                continue  # this run's own
            if mine:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                    stopped += 1
            record.unlink(missing_ok=True)
        folder, run = self._folder + ":", self.run + ":"
        stopped += descendants.sweep(lambda t: t.startswith(folder) and not t.startswith(run))
        for tmp in self.tmp.iterdir():  # temporary folders of containers now gone
            shutil.rmtree(tmp, ignore_errors=True)
        if stopped:
            log.warning("stopped %d process(es) left by a previous server", stopped)
        return stopped


class TemplateFailed(RuntimeError):
    """A template reported that importing the code failed."""


def _template_key(spec: ContainerSpec) -> tuple[Path, str]:
    return (spec.code_dir, spec.module)


def _python_path(code_dir: Path, env: dict[str, str]) -> str:
    return os.pathsep.join(p for p in (str(code_dir), env.get("PYTHONPATH", "")) if p)


def _is_ours(pid: int, folder: str, run: str) -> bool | None:
    """Whether ``pid`` is a container or template process of data folder ``folder`` left
    by another run (not a pid reused since, nor another data folder's container); None: it
    is one of run ``run``'s own."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        token = descendants.token_of(Path(f"/proc/{pid}/environ").read_bytes())
    except OSError:
        return False
    if not any(marker in cmdline for marker in _MARKERS):
        return False
    if token is None:
        return True  # started by a Cove from before tokens
    if token.startswith(run + ":"):
        return None
    return token.startswith(folder + ":")
