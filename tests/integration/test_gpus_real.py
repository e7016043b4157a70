"""GPU placement on a real GPU machine: skipped where ``nvidia-smi`` finds no GPU.

The fake ``nvidia-smi`` tests (test_gpus_placement.py) check the allocation rules; this one
checks the part a fake cannot: that the CUDA driver, in a container, shows exactly the GPUs
Cove gave it and none to a function that asked for none.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cove.engine.settings import Settings
from cove.runtime.gpus import discover
from cove.server import create_app
from tests.conftest import APPS

GPUS = discover()
pytestmark = pytest.mark.skipif(
    not GPUS, reason="no GPU here (nvidia-smi found none); runs on a machine with an NVIDIA GPU"
)


def test_cuda_in_containers_sees_only_the_given_gpu(tmp_path: Path) -> None:
    if not any("H100" in g.name or "H200" in g.name for g in GPUS):
        pytest.skip(f"this test asks for an H100 or H200; the machine has {GPUS}")
    app = create_app(Settings(data_dir=tmp_path / "data"))
    with TestClient(app) as client:
        path = APPS / "real_gpu.py"
        r = client.post("/applications", files={"code": (path.name, path.read_bytes())})
        assert r.status_code == 201, r.text
        r = client.post("/applications/real_gpu_check", params={"wait": 300})
        assert r.status_code == 200, r.text
        out = r.json()
        print(out)
        if "H100" in GPUS[0].name:
            h100 = out["h100"]
            assert h100["count"] == 1 and "H100" in h100["names"][0]
            assert h100["visible"] == str(GPUS[0].index)
        any_of = out["any_of"]
        assert any_of["count"] == 1 and any_of["visible"] == str(GPUS[0].index)
        none = out["none"]
        assert none["visible"] == "" and none["count"] == 0 and none["init_status"] == 100
