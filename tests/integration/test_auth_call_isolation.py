"""The per-call credential: a container acts only for the calls the server dispatched to it.

Each container talks to the server over its own private channel (a socketpair made when
it starts), so the channel is the credential: the server knows which calls it sent down
it, and refuses every frame that names another request or call.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from cove.engine.settings import Settings
from cove.server import create_app
from tests.conftest import APPS, wait_until


def test_a_container_cannot_act_for_another_request(tmp_path: Path) -> None:
    code = {"code": ("forger.py", (APPS / "forger.py").read_bytes())}
    flag = tmp_path / "flag"
    with TestClient(create_app(Settings(data_dir=tmp_path / "data"))) as client:
        assert client.post("/applications", files=code).status_code == 201
        victim_id = client.post("/applications/victim", json=str(flag)).json()["request_id"]
        wait_until(lambda: (tmp_path / "victim-ready").exists(), what="the victim to run")

        r = client.post("/applications/attacker?wait=60", json=victim_id)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["found"] is False and out["value"] is None  # its state was not read
        assert out["child"].startswith("refused")  # no call started in its name
        assert "does not serve" in out["child"]

        flag.touch()
        r = client.get(f"/applications/victim/requests/{victim_id}/output", params={"wait": 60})
        assert r.json() == {"secret": "victim-data"}  # ... nor overwritten
        events = client.get(
            f"/applications/victim/requests/{victim_id}/progress", params={"format": "json"}
        ).json()["events"]
        messages = [e.get("message") for e in events if e["type"] == "progress"]
        assert messages == ["victim waiting"]  # no forged progress
        calls = client.get(f"/applications/victim/requests/{victim_id}").json()["function_calls"]
        assert [c["function"] for c in calls] == ["victim"]
