"""Which pools have a template to prepare: only those whose containers would be forked from
one (not a function with GPUs or with an image, nor one that can never run here)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from cove.engine.deployments import Version
from cove.engine.pool import Pool, PoolHooks
from cove.runtime.base import ContainerRuntime, ContainerSpec
from cove.runtime.local import LocalProcessRuntime


def pool_of(tmp_path: Path, unsatisfiable: dict[str, Any] | None = None, **function: Any) -> Pool:
    manifest = {
        "module": "mod",
        "functions": [{"name": "f", **function}],
        "applications": [{"name": "app", "function": "f"}],
    }
    version = Version("app", 1, "mod", "mod.py", "blob", manifest, 0.0, tmp_path / "code")
    runtime = LocalProcessRuntime(tmp_path / "data")
    return Pool(
        version, version.functions["f"], runtime, PoolHooks(), 4, unsatisfiable=unsatisfiable
    )


def test_only_forked_functions_have_a_template_to_prepare(tmp_path: Path) -> None:
    spec = pool_of(tmp_path).template_spec()
    assert spec is not None and spec.fork
    assert (spec.code_dir, spec.module) == (tmp_path / "code", "mod")
    assert pool_of(tmp_path, gpu="H100").template_spec() is None  # spawned: CUDA
    image = {"name": "img", "steps": []}
    assert pool_of(tmp_path, image=image).template_spec() is None  # the image's interpreter
    assert pool_of(tmp_path, unsatisfiable={"reason": "x"}).template_spec() is None


def test_runtimes_without_templates_have_nothing_to_prepare(tmp_path: Path) -> None:
    class Bare(ContainerRuntime):  # like Ray's: the interface's defaults
        async def start(self, spec: ContainerSpec) -> Any:
            raise AssertionError("prepare must not start a container")

        def reap_orphans(self) -> int:
            return 0

    spec = ContainerSpec("c", "app", 1, "f", "mod", tmp_path)
    asyncio.run(Bare().prepare(spec))
    asyncio.run(Bare().retain([spec]))
    off = LocalProcessRuntime(tmp_path / "data", use_templates=False)
    asyncio.run(off.prepare(spec))
    assert not off.templates and not off.template_starts
