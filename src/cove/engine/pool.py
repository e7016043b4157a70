"""Container pools: one per function of a deployed version.

A call goes to a container with a free slot (``max_concurrency`` per container), else a
new container starts while the pool is under ``max_containers``, else the call waits in
a FIFO queue. A parent blocked on its children gives its slot back while it waits
(the children may borrow it), so recursion or fan-out deeper than the pool cannot
deadlock, even with ``max_containers=1``. Across pools, ``Capacity`` (capacity.py) keeps
the containers within the machine's CPUs, memory and GPUs: a call that does not fit waits.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cove.engine.failures import failure
from cove.engine.failures import storage_full as storage_full_failure
from cove.engine.secrets import MissingSecretsError, SecretStore
from cove.errors import CoveError, storage_full
from cove.runtime.base import Container, ContainerRuntime, ContainerSpec
from cove.runtime.gpus import GpuAllocator, gpu_env
from cove.runtime.images import BuiltImage, ImageBuilder

if TYPE_CHECKING:
    from cove.engine.capacity import Capacity
    from cove.engine.deployments import Version
    from cove.engine.model import Call

log = logging.getLogger(__name__)
_ids = itertools.count(1)


@dataclass(eq=False)
class Slot:
    """A running container and the calls it serves."""

    container: Container
    pool: Pool
    active: int = 0
    calls: dict[str, Call] = field(default_factory=dict)
    alive: bool = True
    stopped_by_server: bool = False  # killed on purpose (timeout, cancellation, scale-down)
    out_of_memory: bool = False  # killed for going over its function's memory
    out_of_disk: bool = False  # killed for filling its temporary folder past ephemeral_disk
    idle_since: float = field(default_factory=time.monotonic)

    @property
    def state(self) -> str:
        if not self.alive:
            return "stopped"
        return "busy" if self.calls else "idle"


class PoolHooks:
    """What a pool needs from the engine."""

    on_dispatch: Callable[[Call], None]
    on_frame: Callable[[Slot, tuple[Any, ...]], None]
    on_lost: Callable[[Slot], None]
    on_start_failed: Callable[[Pool, dict[str, Any]], None]
    on_gpus_freed: Callable[[], None]
    container_env: dict[str, str] = {}  # variables every container gets (the blob store's)


class Pool:
    """The containers of one function of one version."""

    def __init__(
        self,
        version: Version,
        function: dict[str, Any],
        runtime: ContainerRuntime,
        hooks: PoolHooks,
        default_max: int,
        start_timeout: float = 300.0,
        unsatisfiable: dict[str, Any] | None = None,
        gpus: GpuAllocator | None = None,
        start_retries: int = 3,
        secrets: SecretStore | None = None,
        images: ImageBuilder | None = None,
        capacity: Capacity | None = None,
    ) -> None:
        self.version = version
        self.function = function
        self.runtime = runtime
        self.hooks = hooks
        self.max_containers: int = function.get("max_containers") or default_max
        self.max_concurrency: int = function.get("max_concurrency") or 1
        self.min_containers: int = function.get("min_containers") or 0
        self.warm_containers: int = function.get("warm_containers") or 0
        self.cpu = float(function.get("cpu") or 1.0)
        self.memory_gb = float(function.get("memory") or 1.0)
        self.capacity = capacity
        self.retired = False  # an older version: it keeps no minimum and no warm containers
        self.users: set[tuple[str, int]] = set()  # the (application, version)s it serves
        self.cold_start_seconds: deque[float] = deque(maxlen=200)
        self.queue: deque[Call] = deque()
        self.slots: list[Slot] = []
        self.starting = 0
        self.cold_starts = 0
        self.start_timeout = float(function.get("init_timeout") or start_timeout)
        # Why no container of this function can ever run here (None: it can).
        self.unsatisfiable = unsatisfiable
        self.gpus = gpus
        self.start_retries = start_retries
        self.secrets = secrets
        self.images = images
        self.lost_starts = 0  # containers that died while starting, in a row
        self._image_built = False
        self._image_failed = False  # its last build on this server failed
        self._image_build: asyncio.Task[None] | None = None  # building it on this server
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return str(self.function["name"])

    def submit(self, call: Call) -> None:
        self.queue.append(call)
        if self.unsatisfiable is not None:
            self.hooks.on_start_failed(self, self.unsatisfiable)  # fail fast, never wait
            return
        self.pump()

    def pump(self) -> None:
        """Hand queued calls to free slots; start containers for what is left."""
        queue, capacity = self.queue, self.capacity
        short = False  # a call waits for the machine's capacity, not for this pool
        while queue:
            call = queue[0]
            if call.run.finished or call.finished or call.slot is not None:
                queue.popleft()
                continue
            slot = self._free_slot()
            if slot is None:
                break
            if slot.active == 0 and capacity is not None and not capacity.can_run(self):
                short = True  # an idle container would start using a CPU the machine lacks
                break
            queue.popleft()
            self._dispatch(slot, call)
        want = len(queue) - self.starting
        target = self.target()
        if (want > 0 or len(self.slots) + self.starting < target) and not self._image_ready(
            demand=want > 0
        ):
            return  # its image is being built on this server first: the calls wait queued
        while len(self.slots) + self.starting < self.max_containers and (
            want > 0 or len(self.slots) + self.starting < target
        ):
            demand = want > 0
            if capacity is not None and not (
                (not demand or capacity.can_run(self)) and capacity.can_start(self, demand)
            ):
                short = short or demand
                break
            if not self._spawn(demand):
                short = short or demand
                break  # its GPUs are busy: it starts when some are released
            want -= 1
        if capacity is not None:
            if short and queue:
                capacity.wait(self)
            else:
                capacity.forget(self)

    def target(self) -> int:
        """How many containers the pool keeps without queued calls: ``min_containers``, or
        the busy ones plus ``warm_containers`` idle and ready, within ``max_containers``."""
        if self.retired or self.unsatisfiable is not None:
            return 0
        busy = sum(1 for slot in self.slots if slot.calls)
        return min(self.max_containers, max(self.min_containers, busy + self.warm_containers))

    def _free_slot(self) -> Slot | None:
        best: Slot | None = None
        for slot in self.slots:
            if (
                slot.alive
                and slot.active < self.max_concurrency
                and (best is None or slot.active < best.active)
            ):
                best = slot
        return best

    def _dispatch(self, slot: Slot, call: Call) -> None:
        call.slot = slot
        call.holds_slot = True
        call.status = "running"
        call.attempts += 1
        call.children_waiting = 0
        slot.active += 1
        slot.calls[call.call_id + "@" + call.run.id] = call
        self.hooks.on_dispatch(call)
        slot.container.send(
            ("call", call.call_id, call.run.id, call.args, call.input_mode, call.output_mode)
        )

    def release(self, slot: Slot, call: Call) -> None:
        """A call left its container (finished, failed, or moved)."""
        slot.calls.pop(call.call_id + "@" + call.run.id, None)
        if call.holds_slot:
            call.holds_slot = False
            slot.active -= 1
        call.slot = None
        if not slot.calls:
            slot.idle_since = time.monotonic()
        self.pump()
        self._freed()

    def borrow(self, call: Call) -> None:
        """``call`` now waits on children: its slot may serve other calls meanwhile."""
        if call.holds_slot and call.slot is not None:
            call.holds_slot = False
            call.slot.active -= 1
            self.pump()
            self._freed()

    def _freed(self) -> None:
        if self.capacity is not None:
            self.capacity.freed()

    def unborrow(self, call: Call) -> None:
        """``call``'s children are all done: it runs again and holds its slot."""
        if not call.holds_slot and call.slot is not None and call.slot.alive:
            call.holds_slot = True
            call.slot.active += 1

    # -- containers ---------------------------------------------------------------------
    def _image_ready(self, demand: bool) -> bool:
        """Whether the function's image (if it has one) is built on this server. If not (it
        was built for a deploy made through another replica, or its folder was lost), it
        is built now, in the background, and the pool pumps again once it is; after a
        failed build, only queued calls (``demand``) try again."""
        image = self.function.get("image")
        if image is None or self.images is None or self._image_built:
            return True
        if not self.runtime.builds_images:
            return True  # the runtime makes the image's environment itself
        if self.images.get(image) is not None:
            self._image_built = True
            return True
        if self._image_build is None and (demand or not self._image_failed):
            self._image_build = task = asyncio.get_running_loop().create_task(self._build(image))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return False

    async def _build(self, image: dict[str, Any]) -> None:
        assert self.images is not None
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self.images.build, image)
            self._image_failed = False
        except Exception as exc:
            why = exc.message if isinstance(exc, CoveError) else repr(exc)
            log.warning("building the image of %s here failed: %s", self.name, why)
            self._image_failed = True
            self.hooks.on_start_failed(self, _start_failure(self.name, f"its image: {why}"))
        finally:
            self._image_build = None
        self.pump()

    def _spawn(self, demand: bool = True) -> bool:
        """Start one container; False when the GPUs it needs are all taken right now.

        For a queued call (``demand``), an idle container of another function that holds
        GPUs is stopped to free them; this pool starts when they come back."""
        v = self.version
        container_id = f"{v.app}-v{v.version}-{self.name}-{next(_ids)}".replace(".", "_")
        env: dict[str, str] = {}
        gpus = self.gpus
        if gpus is not None and gpus.gpus:
            wanted = self.function.get("gpu")
            held = gpus.allocate(wanted, container_id) if wanted else []
            if held is None:
                if demand and self.capacity is not None:
                    self.capacity.evict_gpu_holder(
                        self, lambda slot: bool(gpus.held_by(slot.container.id))
                    )
                return False
            env = gpu_env(held)  # only the GPUs it holds (none if it asked for none)
        names = list(self.function.get("secrets") or [])
        if names and self.secrets is not None:
            try:
                env.update(self.secrets.environment(names))  # only the secrets it lists
            except MissingSecretsError as exc:
                self._release_gpus(container_id)
                self.hooks.on_start_failed(self, _missing_secrets(self.name, exc.names))
                return False
            except CoveError as exc:  # the secrets cannot be read (another replica's key)
                self._release_gpus(container_id)
                self.hooks.on_start_failed(self, _start_failure(self.name, exc.message))
                return False
        image = self.function.get("image")
        built = None
        if image and self.images is not None and self.runtime.builds_images:
            built = self.images.get(image)
        if image and built is None and self.runtime.builds_images:
            self._release_gpus(container_id)
            self.hooks.on_start_failed(self, _start_failure(self.name, "its image is not built"))
            return False
        if built is not None:
            env = {**built.env, **env}
        self.starting += 1
        self._background(self._start(self._spec(container_id, env, built)))
        return True

    def _spec(
        self, container_id: str, env: dict[str, str], built: BuiltImage | None
    ) -> ContainerSpec:
        v = self.version
        return ContainerSpec(
            container_id=container_id,
            app=v.app,
            version=v.version,
            function=self.name,
            module=v.module,
            code_dir=v.code_dir,
            env={**self.hooks.container_env, **env},
            # Forked from the template only when it runs the server's interpreter and no GPU.
            fork=not self.function.get("gpu") and built is None,
            python=str(built.python) if built is not None else None,
            cpu=float(self.function.get("cpu") or 1.0),
            cwd=built.workdir if built is not None else None,
            manifest=self.function,
            region=self.function.get("region") or v.application.get("region"),
        )

    def template_spec(self) -> ContainerSpec | None:
        """What the pool's containers are like, for the runtime to prepare before the first
        one starts (its template: ``ContainerRuntime.prepare``); None when a template would
        serve none of them: a function that can never run here, one with GPUs or one with
        an image (spawned, in the image's own interpreter) is never forked."""
        if self.unsatisfiable is not None or self.function.get("gpu"):
            return None
        if self.function.get("image"):
            return None
        v = self.version
        return self._spec(f"{v.app}-v{v.version}-{self.name}-template".replace(".", "_"), {}, None)

    @property
    def in_use(self) -> bool:
        """Whether it has containers, or calls that wait for one."""
        return bool(self.slots or self.starting or self.queue)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _release_gpus(self, container_id: str) -> None:
        if self.gpus is not None and self.gpus.held_by(container_id):
            self.gpus.release(container_id)
            self.hooks.on_gpus_freed()

    async def _start(self, spec: ContainerSpec) -> None:
        container, began = None, time.monotonic()
        try:
            container = await self.runtime.start(spec)
            async with asyncio.timeout(self.start_timeout):
                first = await container.recv()
        except TimeoutError:
            first = ("init_failed", _init_timeout(self.name, self.start_timeout))
        except Exception as exc:
            full = storage_full(exc)
            if full is not None:  # its log, record or temporary folder did not fit
                log.warning("container for %s failed to start: %s", self.name, full.message)
                why = storage_full_failure(full.message, self.name)
            else:
                log.exception("container for %s failed to start", self.name)
                why = _start_failure(self.name, repr(exc))
            first = None if container is not None else ("init_failed", why)
        self.starting -= 1
        self._freed()
        if first is None or first[0] != "ready":
            if container is not None:
                await container.kill()
            self._release_gpus(spec.container_id)
            if first is None and self.lost_starts < self.start_retries:
                # It died before saying anything (killed, out of memory): the machine's
                # doing, not the code's. Start another; the queued calls wait.
                self.lost_starts += 1
                self.pump()
                return
            failure = first[1] if first else _start_failure(self.name, "container exited")
            self.hooks.on_start_failed(self, failure)
            return
        self.lost_starts = 0
        assert container is not None
        self.cold_starts += 1
        self.cold_start_seconds.append(time.monotonic() - began)
        slot = Slot(container, self)
        self.slots.append(slot)
        self._background(self._serve(slot))
        self.pump()

    async def _serve(self, slot: Slot) -> None:
        on_frame = self.hooks.on_frame
        while True:
            msg = await slot.container.recv()
            if msg is None:
                break
            try:
                on_frame(slot, msg)
            except Exception:
                log.exception("handling frame %s from %s failed", msg[0], slot.container.id)
        slot.alive = False
        if slot in self.slots:
            self.slots.remove(slot)
        self._release_gpus(slot.container.id)
        self.hooks.on_lost(slot)
        self.pump()
        self._freed()

    def enforce_limits(self, check_disk: bool) -> None:
        """Stop containers over their function's ``memory`` (resident set) or, when
        ``check_disk``, over its ``ephemeral_disk`` (their temporary folder)."""
        memory = float(self.function.get("memory") or 1.0) * 1024**3
        disk = float(self.function.get("ephemeral_disk") or 2.0) * 1024**3
        for slot in self.slots:
            if not slot.alive:
                continue
            used = slot.container.memory_bytes()
            if used is not None and used > memory:
                slot.out_of_memory = True
            elif check_disk and (slot.container.disk_bytes() or 0) > disk:
                slot.out_of_disk = True
            else:
                continue
            log.warning("%s went over its function's limits: stopped", slot.container.id)
            slot.alive, slot.stopped_by_server = False, True
            asyncio.get_running_loop().create_task(slot.container.kill())

    async def stop_idle(self, idle_timeout: float) -> None:
        """Stop containers idle for ``idle_timeout`` that the pool does not need to keep."""
        now = time.monotonic()
        if self.retired:
            idle_timeout = 0.0  # an old version's idle containers serve no one
        for slot in list(self.slots):
            if len(self.slots) <= self.target():
                break
            if not slot.calls and now - slot.idle_since > idle_timeout:
                self.discard(slot)

    def discard(self, slot: Slot) -> None:
        """Stop an idle container: scaled down, or evicted to make room for another pool.

        It leaves the pool's count at once; its GPUs come back when it has exited."""
        slot.alive, slot.stopped_by_server = False, True
        if slot in self.slots:
            self.slots.remove(slot)
        self._background(slot.container.kill())
        self._freed()

    async def stop(self) -> None:
        self.retired = True  # it serves no one any more
        for slot in list(self.slots):
            slot.alive, slot.stopped_by_server = False, True
            await slot.container.kill()
        self.slots.clear()
        for task in list(self._tasks):
            task.cancel()

    def describe(self) -> dict[str, Any]:
        """The pool as ``GET /applications/{app}/functions`` shows it."""
        starts = sorted(self.cold_start_seconds)
        containers = [
            {
                "id": s.container.id,
                "state": s.state,
                "calls": len(s.calls),
                "pid": s.container.pid,
                "node": s.container.node,
            }
            for s in self.slots
        ]
        containers += [
            {"id": None, "state": "starting", "calls": 0, "pid": None, "node": None}
        ] * self.starting
        return {
            "function": self.name,
            "version": self.version.version,
            "containers": containers,
            "in_flight": sum(len(s.calls) for s in self.slots),
            "queued": sum(1 for c in self.queue if not c.run.finished),
            "cold_starts": self.cold_starts,
            "cold_start_seconds": {
                "count": len(starts),
                "last": round(self.cold_start_seconds[-1], 4) if starts else None,
                "p50": round(starts[len(starts) // 2], 4) if starts else None,
                "p99": round(starts[min(len(starts) - 1, len(starts) * 99 // 100)], 4)
                if starts
                else None,
                "max": round(starts[-1], 4) if starts else None,
            },
            "min_containers": self.min_containers,
            "max_containers": self.max_containers,
            "warm_containers": self.warm_containers,
            "max_concurrency": self.max_concurrency,
            "cpu": self.cpu,
            "memory_gb": self.memory_gb,
            "waiting_for_capacity": self.capacity is not None and self in self.capacity.waiting,
            "retired": self.retired,
        }


def _missing_secrets(function: str, names: list[str]) -> dict[str, Any]:
    message = (
        f"{function} needs secrets that are not set: {', '.join(names)} "
        "(set them with: cove secrets set NAME)"
    )
    return failure("function_error", function, message, "MissingSecrets")


def _init_timeout(function: str, seconds: float) -> dict[str, Any]:
    message = (
        f"the container of {function} was not ready within {seconds:g} s "
        "(its class constructor runs longer than init_timeout)"
    )
    return failure("function_timeout", function, message, "TimeoutError")


def _start_failure(function: str, message: str) -> dict[str, Any]:
    return failure("internal_error", function, f"container failed to start: {message}",
                   "ContainerStartError")  # fmt: skip
