"""How the Ray runtime maps a function's settings onto actor options and sizes the server
to the cluster (neither needs Ray; tests/e2e/test_ray.py runs a real cluster)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cove.engine.settings import Settings
from cove.runtime.base import ContainerSpec
from cove.runtime.ray import (
    actor_options,
    container_env,
    fit_settings,
    image_runtime_env,
    pip_packages,
    runtime_env,
)


def spec(manifest: dict[str, Any], env: dict[str, str] | None = None, region: str | None = None):
    return ContainerSpec(
        container_id="app-v1-f-1", app="app", version=1, function="f", module="m",
        code_dir=Path("/nowhere"), env=env or {}, manifest=manifest, region=region,
    )  # fmt: skip


def test_resources_concurrency_and_region_become_actor_options() -> None:
    options = actor_options(
        spec({"cpu": 2, "memory": 4, "gpu": "H100:2", "max_concurrency": 8}, region="eu-west-1")
    )
    assert options["num_cpus"] == 2.0
    assert options["memory"] == 4 * 1024**3
    assert options["num_gpus"] == 2
    assert options["max_concurrency"] == 8
    assert options["resources"] == {"accelerator_type:H100": 0.001, "region:eu-west-1": 0.001}
    assert options["max_restarts"] == 0


def test_defaults_without_gpu_or_region() -> None:
    options = actor_options(spec({}))
    assert options["num_cpus"] == 1.0 and options["memory"] == 1024**3
    assert "num_gpus" not in options and "resources" not in options


def test_secrets_and_image_env_become_the_actors_env_and_pip_steps_its_runtime_env() -> None:
    image = {
        "name": "img",
        "steps": [["run", ["pip install -q numpy==2.1 'pandas>=2'"]], ["env", ["MODE", "fast"]]],
    }
    container = spec({"image": image}, env={"API_KEY": "k", "CUDA_VISIBLE_DEVICES": "0"})
    assert runtime_env(container) == {"pip": ["numpy==2.1", "pandas>=2"]}
    assert actor_options(container)["runtime_env"] == {"pip": ["numpy==2.1", "pandas>=2"]}
    # Ray picks the devices of the actor: the local runtime's device list is dropped.
    assert container_env(container) == {"API_KEY": "k", "MODE": "fast"}
    # Without pip steps there is no runtime environment: Ray may use a started worker.
    assert "runtime_env" not in actor_options(spec({}, env={"API_KEY": "k"}))


def test_image_steps_ray_cannot_run_are_refused_with_the_step() -> None:
    with pytest.raises(ValueError, match="apt-get"):
        pip_packages("apt-get install -y curl", "f")
    with pytest.raises(ValueError, match=r"f: image step copy\('data.csv'\)"):
        image_runtime_env({"name": "i", "steps": [["copy", ["data.csv", "/data"]]]}, "f")
    assert pip_packages("python -m pip install requests", "f") == ["requests"]


def test_settings_are_sized_to_the_cluster_unless_given() -> None:
    nodes = [
        {"CPU": 8.0, "memory": 16 * 1024**3},
        {"CPU": 4.0, "memory": 8 * 1024**3, "region:eu-west-1": 1.0, "GPU": 2.0,
         "accelerator_type:A100": 1.0},
    ]  # fmt: skip
    settings = Settings()
    fit_settings(settings, nodes)
    assert settings.cpus == 12.0 and settings.memory_gb == 24.0
    assert settings.regions == ["eu-west-1"]
    assert settings.gpus == ["A100", "A100"]
    given = Settings(cpus=3, regions=["us-east-1"])
    fit_settings(given, nodes)
    assert given.cpus == 3 and given.regions == ["us-east-1"]


def test_actor_names_are_unique_although_container_ids_repeat() -> None:
    # Replicas and restarted servers count containers from 1 again, on one cluster.
    names = {actor_options(spec({}))["name"] for _ in range(50)}
    assert len(names) == 50
    assert all(name.startswith("cove-app-v1-f-1-") for name in names)
