"""GPU placement with a fake ``nvidia-smi`` (a recorded H100 machine) on the PATH: a
function gets the GPU it asks for through CUDA_VISIBLE_DEVICES, others get none, calls
wait for a busy GPU, and a GPU the machine lacks fails fast."""

from __future__ import annotations

import stat
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cove.engine.settings import Settings
from cove.server import create_app
from tests.conftest import APPS

# GPUs found on this machine by nvidia-smi: the local runtime's. On Ray, the cluster's GPU
# resources (tests/unit/test_ray_runtime.py: fit_settings, actor_options).
pytestmark = pytest.mark.local_runtime_only

FIXTURES = Path(__file__).resolve().parents[1] / "unit" / "gpu_fixtures"


@pytest.fixture
def fake_h100(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "nvidia-smi"
    script.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" "{FIXTURES / "fake_nvidia_smi.py"}" '
        f'"{FIXTURES / "nvidia-smi-h100.txt"}" "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")


def test_gpus_are_discovered_and_given_by_model(fake_h100: None, tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "data"))
    with TestClient(app) as client:
        engine = app.state.engine
        assert [g.name for g in engine.gpus.gpus] == ["NVIDIA H100 80GB HBM3"]
        path = APPS / "gpu_apps.py"
        assert (
            client.post("/applications", files={"code": (path.name, path.read_bytes())}).status_code
            == 201
        )
        r = client.post("/applications/gpu_work", params={"wait": 120}, json=2)
        assert r.status_code == 200, r.text
        out = r.json()
        assert [c["visible"] for c in out["h100"]] == ["0", "0"]
        assert out["h100"][0]["order"] == "PCI_BUS_ID"
        assert out["plain"] == ""  # a function that asked for no GPU sees none
        first, second = sorted(out["h100"], key=lambda c: c["start"])
        assert second["start"] >= first["end"]  # one H100: the second call waited for it

        began = time.monotonic()
        r = client.post("/applications/wants_a100s", params={"wait": 60})
        assert r.status_code == 500 and time.monotonic() - began < 10  # fails fast
        err = r.json()["error"]
        assert err["reason"] == "constraint_unsatisfiable"
        rid = r.headers["x-cove-request-id"]
        message = client.get(f"/applications/wants_a100s/requests/{rid}").json()["error"]
        assert "A100-80GB:2" in message["message"] and "H100" in message["message"]


def test_without_gpus_a_gpu_function_fails_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An nvidia-smi that finds no driver, first on the PATH (a GPU machine has a real one
    # in /usr/bin): what a machine without a working GPU says.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\necho \"NVIDIA-SMI has failed because it couldn't communicate with the "
        'NVIDIA driver." >&2\nexit 9\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    app = create_app(Settings(data_dir=tmp_path / "data"))
    with TestClient(app) as client:
        assert app.state.engine.gpus.gpus == []
        path = APPS / "gpu_apps.py"
        client.post("/applications", files={"code": (path.name, path.read_bytes())})
        r = client.post("/applications/gpu_work", params={"wait": 60}, json=1)
        assert r.status_code == 500
        assert r.json()["error"]["reason"] == "constraint_unsatisfiable"


def test_an_idle_container_gives_its_gpu_to_another_function(
    fake_h100: None, tmp_path: Path
) -> None:
    # sees_h100 and sees_any_of both want the machine's one H100, one after the other.
    # sees_h100's container stays idle after its call (scale-down is minutes away): it is
    # stopped to free the GPU rather than leaving sees_any_of to wait for it.
    app = create_app(Settings(data_dir=tmp_path / "data"))
    with TestClient(app) as client:
        path = APPS / "real_gpu.py"
        client.post("/applications", files={"code": (path.name, path.read_bytes())})
        r = client.post("/applications/real_gpu_check", params={"wait": 60})
        assert r.status_code == 200, r.text
        out = r.json()
        assert (out["h100"]["visible"], out["any_of"]["visible"], out["none"]["visible"]) == (
            "0",
            "0",
            "",
        )
        assert app.state.engine.capacity.evictions == 1
        gpus = client.get("/status").json()["gpus"]
        assert [(g["name"], g["held_by"] is not None) for g in gpus] == [
            ("NVIDIA H100 80GB HBM3", True)
        ]
