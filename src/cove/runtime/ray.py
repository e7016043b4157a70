"""The Ray runtime: each container is a Ray actor somewhere on a Ray cluster.

``cove server --runtime ray --ray-address HOST:PORT`` connects the server to the cluster as
a Ray driver and places every container as an actor (``cove.runtime.ray_actor``):

- ``cpu`` -> ``num_cpus``, ``memory`` -> ``memory`` (bytes), ``gpu`` -> ``num_gpus`` and the
  ``accelerator_type:<MODEL>`` node resource, ``region`` -> the ``region:<NAME>`` node
  resource, ``max_concurrency`` -> the actor's ``max_concurrency``;
- ``image`` -> its ``pip install`` steps become the ``pip`` packages of the actor's runtime
  environment, its ``env`` steps environment variables (other steps cannot run on Ray);
- ``secrets`` -> environment variables of that actor's process only, set by the actor
  before the code is imported;
- actors spread over the nodes (``SPREAD``) and are owned by the server's driver: if the
  server dies, Ray stops them.

The channel: the server listens on TCP (on the address the cluster reaches it at); each
actor connects back with a one-time 16-byte token and then speaks the same frames as the
local runtime's socketpair (``cove.runtime.protocol``). ``cove.runtime.worker`` runs
unchanged at the other end, so calls from code in a Ray container (blocking calls, map,
futures, state, progress, logs) are exactly those of the local runtime.

Ray does not enforce memory per actor: a monitor task per container asks the actor for
its resident memory (and its temporary folder's size) and Cove's pool stops it over the
function's limit with the usual ``out_of_memory`` reason. The same polling notices an actor
whose node died even when no TCP reset arrives. Stopping a container (timeout,
cancellation, scale-down) is ``ray.kill``; the pool replaces it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shlex
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cove.runtime.base import Container, ContainerRuntime, ContainerSpec
from cove.runtime.gpus import parse_request
from cove.runtime.protocol import encode, read_frame

if TYPE_CHECKING:
    from cove.engine.settings import Settings

log = logging.getLogger(__name__)
TOKEN_BYTES = 16
NAMESPACE = "cove"
_GPU_ENV = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")  # Ray assigns devices itself
_MONITOR_INTERVAL = 0.5
_MONITOR_TIMEOUT = 10.0
_GIB = 1024**3


class RayContainer(Container):
    """A container actor and its channel."""

    def __init__(
        self,
        spec: ContainerSpec,
        actor: Any,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        node_id: str,
        pid: int,
        check_interval: float,
    ) -> None:
        self.id = spec.container_id
        self.actor = actor
        self.node_id = node_id
        self._pid = pid
        self._reader = reader
        self._writer = writer
        self._memory: int | None = None
        self._disk: int | None = None
        self._gone = False
        self._monitor = asyncio.get_running_loop().create_task(self._watch(check_interval))

    @property
    def pid(self) -> int | None:
        return self._pid  # on its node, not on this machine

    @property
    def node(self) -> str | None:
        return self.node_id

    def memory_bytes(self) -> int | None:
        return self._memory

    def disk_bytes(self) -> int | None:
        return self._disk

    def send(self, msg: tuple[Any, ...]) -> None:
        if not self._writer.is_closing():
            self._writer.write(encode(msg))

    async def recv(self) -> tuple[Any, ...] | None:
        msg = await read_frame(self._reader)
        if msg is None:
            self._gone = True
            self._monitor.cancel()
        return msg

    async def kill(self) -> None:
        import ray

        self._gone = True
        self._monitor.cancel()
        with contextlib.suppress(Exception):
            ray.kill(self.actor, no_restart=True)
        self._writer.close()
        self._reader.feed_eof()

    async def _watch(self, interval: float) -> None:
        """Poll the actor's memory and disk; end the channel if the actor is gone."""
        from ray.exceptions import RayActorError

        tick = 0
        while not self._gone:
            await asyncio.sleep(interval)
            tick += 1
            try:
                ref = self.actor.usage.remote(tick % 4 == 0)
                async with asyncio.timeout(_MONITOR_TIMEOUT):
                    memory, disk = await asyncio.wrap_future(ref.future())
            except (RayActorError, TimeoutError):
                # Its node or process died (or hangs): the calls it held are lost.
                if not self._gone:
                    log.warning("container %s on node %s is gone", self.id, self.node_id[:12])
                    self._writer.close()
                    self._reader.feed_eof()
                return
            except Exception:
                log.exception("monitoring container %s failed", self.id)
                continue
            self._memory = memory
            if disk is not None:
                self._disk = disk


class LostContainer(Container):
    """A container whose actor died before its channel opened: it ends at once."""

    def __init__(self, container_id: str) -> None:
        self.id = container_id

    @property
    def pid(self) -> int | None:
        return None

    def send(self, msg: tuple[Any, ...]) -> None:
        pass

    async def recv(self) -> tuple[Any, ...] | None:
        return None

    async def kill(self) -> None:
        pass


def _init_error(exc: Exception) -> str:
    """The useful end of a Ray actor's creation error."""
    text = str(exc).strip()
    return text[-2000:] if text else repr(exc)


class RayRuntime(ContainerRuntime):
    """Containers as Ray actors on the cluster at ``address``."""

    reserved_for_life = True  # an actor holds its num_cpus and memory until it stops
    builds_images = False  # an image is the actor's runtime_env, made by Ray on its node

    def __init__(
        self,
        address: str,
        callback_host: str | None = None,
        check_interval: float = _MONITOR_INTERVAL,
        start_timeout: float = 300.0,
    ) -> None:
        import ray

        # The address the cluster's nodes reach this server at: the one this machine
        # reaches the head from (found without sending anything).
        self.callback_host = callback_host or _local_address(address)
        if not ray.is_initialized():
            ray.init(
                address=address,
                namespace=NAMESPACE,
                log_to_driver=False,
                configure_logging=False,
                _node_ip_address=self.callback_host,
            )
        from cove.runtime.ray_actor import remote_class

        self.check_interval = max(check_interval, _MONITOR_INTERVAL)
        self.start_timeout = start_timeout
        self._actor_class = remote_class()
        self._server: asyncio.Server | None = None
        self._port = 0
        self._pending: dict[bytes, asyncio.Future[tuple[asyncio.StreamReader,
                                                        asyncio.StreamWriter]]] = {}  # fmt: skip
        self._listen_lock = asyncio.Lock()

    @classmethod
    def connect(cls, settings: Settings) -> RayRuntime:
        """Connect to ``settings.ray_address`` and size ``settings`` to the cluster."""
        try:
            import ray  # noqa: F401
        except ImportError:
            raise RuntimeError(
                "the Ray runtime needs Ray installed: pip install 'cove[ray]'"
            ) from None
        runtime = cls(
            settings.ray_address or "auto",
            settings.ray_callback_host,
            settings.memory_check_interval,
            settings.container_start_timeout,
        )
        fit_settings(settings, node_resources())
        return runtime

    # -- the listener actors connect back to ------------------------------------------
    async def _listen(self) -> None:
        async with self._listen_lock:
            if self._server is not None:
                return
            self._server = await asyncio.start_server(
                self._accept, self.callback_host, 0, limit=1 << 20
            )
            self._port = self._server.sockets[0].getsockname()[1]
            log.info("containers connect back to %s:%d", self.callback_host, self._port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        try:
            async with asyncio.timeout(30):
                token = await reader.readexactly(TOKEN_BYTES)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            writer.close()
            return
        waiter = self._pending.pop(token, None)
        if waiter is None or waiter.done():
            writer.close()  # not one of ours, or too late
            return
        waiter.set_result((reader, writer))

    # -- containers ---------------------------------------------------------------------
    async def start(self, spec: ContainerSpec) -> Container:
        import ray
        from ray.exceptions import RayActorError

        await self._listen()
        token = secrets.token_bytes(TOKEN_BYTES)
        loop = asyncio.get_running_loop()
        connected: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
        connected = loop.create_future()
        self._pending[token] = connected
        options = actor_options(spec)
        actor = self._actor_class.options(**options).remote(
            (self.callback_host, self._port), token, spec.module, spec.function,
            spec.code_dir.name, code_files(spec.code_dir), spec.container_id,
            container_env(spec),
        )  # fmt: skip
        try:
            ref = actor.info.remote()
            # Placed, its code written and its channel connected (or it could not start).
            async with asyncio.timeout(self.start_timeout):
                node_id, pid = await asyncio.wrap_future(ref.future())
            async with asyncio.timeout(30):
                reader, writer = await connected
        except BaseException as exc:
            self._pending.pop(token, None)
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
            if isinstance(exc, RayActorError) and not exc.actor_init_failed:
                # Its node or worker died while it was being placed: the machine's doing.
                # A container that ends before saying anything is started again.
                log.warning("the actor of %s died while starting: %s", spec.function, exc)
                return LostContainer(spec.container_id)
            if isinstance(exc, RayActorError):
                raise RuntimeError(_init_error(exc)) from None
            if isinstance(exc, TimeoutError):
                raise TimeoutError(
                    f"the Ray actor of {spec.function} was not placed within "
                    f"{self.start_timeout:g} s (does the cluster have {options_summary(options)}?)"
                ) from None
            raise
        return RayContainer(spec, actor, reader, writer, node_id, pid, self.check_interval)

    def check_function(self, function: dict[str, Any]) -> None:
        image_runtime_env(function.get("image"), str(function["name"]))

    def reap_orphans(self) -> int:
        # Actors are owned by the driver that created them: when a server dies, Ray stops
        # its actors itself, so a new server finds none of them running calls.
        return 0

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.cancel()
        self._pending.clear()


# -- mapping a function's settings onto Ray ---------------------------------------------------


def actor_options(spec: ContainerSpec) -> dict[str, Any]:
    """The ``.options(...)`` of the actor for ``spec`` (see the module docstring)."""
    fn = spec.manifest
    resources: dict[str, float] = {}
    options: dict[str, Any] = {
        # Unique in the cluster: container ids repeat across servers (replicas, restarts)
        # sharing one, and an actor name may be held by one live actor only.
        "name": f"cove-{spec.container_id}-{secrets.token_hex(4)}",
        "num_cpus": float(fn.get("cpu") or spec.cpu or 1.0),
        "memory": int(float(fn.get("memory") or 1.0) * _GIB),
        "max_concurrency": max(1, int(fn.get("max_concurrency") or 1)),
        "max_restarts": 0,
        "scheduling_strategy": "SPREAD",
    }
    gpu = fn.get("gpu")
    if gpu:
        # Ray places by one resource shape: the first acceptable model is the one asked for.
        model, count = parse_request(gpu)[0]
        options["num_gpus"] = count
        resources[f"accelerator_type:{model}"] = 0.001
    if spec.region:
        resources[f"region:{spec.region}"] = 0.001
    if resources:
        options["resources"] = resources
    environment = runtime_env(spec)
    if environment:
        options["runtime_env"] = environment
    return options


def container_env(spec: ContainerSpec) -> dict[str, str]:
    """The container's environment variables: the blob store's, the secrets it lists and
    its image's ``env`` steps. The actor sets them in its own process before the code is
    imported (not through Ray's ``runtime_env``, which would cost a new worker process per
    actor instead of one of the workers Ray keeps started)."""
    env = {k: v for k, v in spec.env.items() if k not in _GPU_ENV}
    for op, args in (spec.manifest.get("image") or {}).get("steps", []):
        if op == "env":
            env[str(args[0])] = str(args[1])
    return env


def runtime_env(spec: ContainerSpec) -> dict[str, Any]:
    """Ray's runtime environment of the actor: its image's ``pip install`` steps as ``pip``
    packages (empty without them)."""
    return image_runtime_env(spec.manifest.get("image"), spec.function)


def image_runtime_env(image: dict[str, Any] | None, function: str) -> dict[str, Any]:
    """The ``pip`` packages of an image's ``pip install`` steps; a step other than those
    and ``env`` cannot run on Ray (ValueError, naming it)."""
    packages: list[str] = []
    for op, args in (image or {}).get("steps", []):
        if op == "run":
            packages += pip_packages(str(args[0]), function)
        elif op == "copy":
            raise ValueError(
                f"{function}: image step copy({args[0]!r}) cannot run on the Ray runtime "
                "(it maps images to pip packages and environment variables)"
            )
    return {"pip": packages} if packages else {}


def pip_packages(command: str, function: str) -> list[str]:
    """The requirements of a ``pip install ...`` image step; other commands cannot run."""
    words = shlex.split(command)
    if words[:1] in (["python"], ["python3"]) and words[1:3] == ["-m", "pip"]:
        words = ["pip", *words[3:]]
    if words[:2] not in (["pip", "install"], ["pip3", "install"]):
        raise ValueError(
            f"{function}: image step run({command!r}) cannot run on the Ray runtime, which "
            "installs only `pip install` steps (as the actor's pip runtime environment)"
        )
    return [w for w in words[2:] if not w.startswith("-")]


def options_summary(options: dict[str, Any]) -> str:
    parts = [f"{options['num_cpus']:g} free CPUs", f"{options['memory'] / _GIB:g} GiB memory"]
    if options.get("num_gpus"):
        parts.append(f"{options['num_gpus']} GPUs")
    parts += [f"a node with resource {name}" for name in options.get("resources", {})]
    return ", ".join(parts)


def _local_address(address: str) -> str:
    """This machine's address on the route to the Ray head ``HOST:PORT``."""
    host, _, port = address.rpartition(":")
    if address in ("auto", "") or not host:
        import ray

        return str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host.strip("[]"), int(port or 6379)))  # UDP: no packet is sent
        return str(probe.getsockname()[0])


def node_resources() -> list[dict[str, float]]:
    """The resources of each live node of the cluster."""
    import ray

    return [
        {k: float(v) for k, v in node["Resources"].items()}
        for node in ray.nodes()  # type: ignore[no-untyped-call]
        if node["Alive"]
    ]


def fit_settings(settings: Settings, nodes: list[dict[str, float]]) -> None:
    """Size the server's capacity to the cluster, where the settings did not say.

    CPUs and memory become the cluster's totals, regions the ``region:*`` resources of its
    nodes, GPUs each node's ``GPU`` count of its ``accelerator_type:*`` model (Cove counts
    them, as on one machine; Ray picks the devices)."""
    given = settings.model_fields_set
    if "cpus" not in given:
        settings.cpus = sum(n.get("CPU", 0.0) for n in nodes) or settings.cpus
    if "memory_gb" not in given:
        settings.memory_gb = sum(n.get("memory", 0.0) for n in nodes) / _GIB or settings.memory_gb
    if "regions" not in given:
        settings.regions = sorted(
            {k.split(":", 1)[1] for n in nodes for k in n if k.startswith("region:")}
        )
    if "gpus" not in given:
        gpus: list[str] = []
        for n in nodes:
            models = [k.split(":", 1)[1] for k in n if k.startswith("accelerator_type:")]
            gpus += [models[0] if models else "GPU"] * int(n.get("GPU", 0))
        settings.gpus = gpus


def code_files(code_dir: Path) -> dict[str, bytes]:
    """The deployed code's files by relative POSIX path (a bundle's subfolders too)."""
    return {
        p.relative_to(code_dir).as_posix(): p.read_bytes()
        for p in sorted(code_dir.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }
