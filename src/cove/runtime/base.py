"""The container runtime interface: what the engine needs from a place that runs code.

The local runtime starts processes on this machine; a Ray runtime can implement the same
two classes with actors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ContainerSpec:
    """What to run: one function (or one @cls instance) of one deployed version."""

    container_id: str
    app: str
    version: int
    function: str
    module: str
    code_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    # May it be forked from a template that imported the code? (Not when it needs GPUs:
    # CUDA must not be initialised before the process knows its devices.)
    fork: bool = True
    python: str | None = None  # the interpreter of the function's image (None: the server's)
    cwd: Path | None = None  # the image's workdir (None: the code's folder)
    cpu: float = 1.0  # CPUs it may use: the local runtime confines it to that many cores
    # The function's manifest (resources, image, concurrency) and the region it is pinned
    # to: a runtime that places containers on a cluster (Ray) maps them onto its own.
    manifest: dict[str, Any] = field(default_factory=dict, hash=False)
    region: str | None = None


class Container(ABC):
    """A running container: a framed, bidirectional channel and a way to stop it."""

    id: str

    @abstractmethod
    def send(self, msg: tuple[Any, ...]) -> None:
        """Queue one frame for sending (never blocks the event loop)."""

    @abstractmethod
    async def recv(self) -> tuple[Any, ...] | None:
        """The next frame, or None once the container is gone."""

    @abstractmethod
    async def kill(self) -> None:
        """Stop the container and everything it started."""

    @property
    @abstractmethod
    def pid(self) -> int | None:
        """The process id, where there is one."""

    @property
    def node(self) -> str | None:
        """The machine it runs on, where the runtime places containers on several (its pid
        is a process id there); None on this machine."""
        return None

    def memory_bytes(self) -> int | None:
        """Resident memory of the container now, where the runtime can tell."""
        return None

    def disk_bytes(self) -> int | None:
        """Bytes in the container's temporary folder now, where the runtime can tell."""
        return None

    @property
    def exit_code(self) -> int | None:
        """How the container ended (negative: the signal that stopped it), once it has."""
        return None


class ContainerRuntime(ABC):
    """Starts containers and cleans up after a crash of a previous server."""

    #: Whether a container holds its CPUs and memory from start to stop, idle or blocked
    #: (a Ray actor's ``num_cpus`` and ``memory``), rather than its CPUs only while it runs
    #: calls (a local process; see cove.engine.capacity).
    reserved_for_life: bool = False
    #: Whether containers run in images built on the server (virtual environments in its
    #: data folder), rather than in environments the runtime makes itself (Ray's pip).
    builds_images: bool = True

    @abstractmethod
    async def start(self, spec: ContainerSpec) -> Container:
        """Start a container; returns once its channel is open (not yet ready)."""

    def check_function(self, function: dict[str, Any]) -> None:  # noqa: B027 - optional
        """Raise ValueError, saying why, if this runtime cannot run ``function`` (a
        manifest entry) at all: checked when it is deployed."""

    async def prepare(self, spec: ContainerSpec) -> None:  # noqa: B027 - optional
        """Get ready to start containers like ``spec`` fast, before any is asked for (the
        local runtime starts the template process of its code). Called in the background
        at deploy and at server start; a container started meanwhile waits for the same
        preparation, never for a second one. Nothing to do by default."""

    async def retain(self, specs: Iterable[ContainerSpec]) -> None:  # noqa: B027 - optional
        """Release what :meth:`prepare` (or starting a container) keeps for code that no
        container like one of ``specs`` will use any more (its version was retired).
        Nothing to do by default."""

    @abstractmethod
    def reap_orphans(self) -> int:
        """Stop containers left by a server that died; returns how many were stopped."""

    async def close(self) -> None:  # noqa: B027 - optional hook, nothing to release here
        """Release runtime resources."""
