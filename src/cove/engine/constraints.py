"""Whether a function can ever run on this cluster; if not, its calls fail fast.

A call that no container could ever satisfy must not wait forever in a queue: it fails at
once with ``constraint_unsatisfiable`` and a message naming what is missing.
"""

from __future__ import annotations

from typing import Any

from cove.engine.failures import failure
from cove.engine.settings import Settings
from cove.runtime.gpus import GpuAllocator


def unsatisfiable(
    function: dict[str, Any],
    application: dict[str, Any],
    settings: Settings,
    gpus: GpuAllocator,
) -> dict[str, Any] | None:
    """A failure for ``function``'s calls if nothing here can run it, else None."""
    name = function["name"]
    problem = None
    region = function.get("region") or application.get("region")
    if function.get("cpu", 1.0) > settings.cpus:
        problem = f"needs {function['cpu']:g} CPUs; this machine has {settings.cpus:g}"
    elif function.get("memory", 1.0) > settings.memory_gb:
        problem = (
            f"needs {function['memory']:g} GB of memory; this machine has "
            f"{settings.memory_gb:.1f} GB"
        )
    elif function.get("gpu") and not _satisfiable(gpus, function["gpu"]):
        problem = f"needs GPU {function['gpu']!r}; this cluster has {gpus.summary()}"
    elif region is not None and region not in settings.regions:
        problem = f"is pinned to region {region}; this cluster serves {', '.join(settings.regions)}"
    if problem is None:
        return None
    return failure(
        "constraint_unsatisfiable", name, f"function {name} {problem}", "ConstraintUnsatisfiable"
    )


def _satisfiable(gpus: GpuAllocator, request: str | list[str]) -> bool:
    try:
        return gpus.satisfiable(request)
    except ValueError:  # a malformed request can never be satisfied
        return False
