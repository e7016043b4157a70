"""Templates started ahead of the first request: at deploy and at server start, for the
latest versions' code; stopped once their code is retired (a redeploy of changed code, a
deleted application). The first call after a deploy starts its container by fork."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cove.runtime.base import ContainerSpec
from cove.runtime.local import Template
from tests.conftest import APPS, deployed_client, wait_until

# Templates are the local runtime's (Ray starts actors, with nothing to prepare).
pytestmark = pytest.mark.local_runtime_only

APP = "prestarted"
CODE = (APPS / "prestarted.py").read_bytes()


def engine_of(client: TestClient) -> Any:
    return client.app.state.engine  # type: ignore[attr-defined]


def key_of(engine: Any, app: str = APP) -> tuple[Path, str]:
    version = engine.deployments.get(app)
    return (version.code_dir, version.module)


def running(engine: Any, key: tuple[Path, str]) -> Template | None:
    template: Template | None = engine.runtime.templates.get(key)
    return template if template is not None and template.alive else None


def deploy(client: TestClient, code: bytes = CODE) -> None:
    r = client.post("/applications", files={"code": ("prestarted.py", code)})
    assert r.status_code == 201, r.text


def call(client: TestClient, x: int) -> dict[str, int]:
    r = client.post(f"/applications/{APP}", params={"wait": 120}, json=x)
    assert r.status_code == 200, r.text
    out: dict[str, int] = r.json()
    return out


def settled(engine: Any) -> bool:
    """The engine's last pass over the templates is over."""
    return engine._templates is not None and engine._templates.done()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"  # exited, not yet reaped


def test_deploy_starts_the_template_and_the_first_call_is_a_fork(tmp_path: Path) -> None:
    with deployed_client(tmp_path, "prestarted.py") as client:
        engine = engine_of(client)
        key = key_of(engine)
        # No request yet: the deploy started the template of its code in the background.
        wait_until(lambda: running(engine, key) is not None, 60, "the template to be ready")
        template = running(engine, key)
        assert template is not None
        (row,) = client.get(f"/applications/{APP}/functions").json()["functions"]
        assert row["containers"] == [] and row["cold_starts"] == 0
        out = call(client, 1)
        # The first container was forked from that template, not from a second one.
        assert out["x"] == 1 and out["parent"] == template.process.pid
        assert engine.runtime.templates[key] is template and template.alive


def test_a_call_during_the_template_start_waits_for_that_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    starts: list[str] = []
    with deployed_client(tmp_path) as client:
        engine = engine_of(client)
        runtime = engine.runtime
        start_template = runtime._start_template

        async def held(spec: ContainerSpec) -> Template:
            starts.append(spec.module)
            await asyncio.to_thread(gate.wait, 120)  # until the call waits too
            result: Template = await start_template(spec)
            return result

        monkeypatch.setattr(runtime, "_start_template", held)
        try:
            deploy(client)
            key = key_of(engine)
            wait_until(lambda: starts == [APP], 60, "the template start at deploy")
            rid = client.post(f"/applications/{APP}", json=2).json()["request_id"]
            # The call's container start waits for the template that is starting.
            wait_until(lambda: runtime._forking.get(key) == 1, 60, "the container start")
        finally:
            gate.set()
        r = client.get(f"/applications/{APP}/requests/{rid}/output", params={"wait": 120})
        assert r.status_code == 200, r.text
        template = running(engine, key)
        assert template is not None and r.json()["parent"] == template.process.pid
        assert starts == [APP]  # one template start, not two


def test_server_start_starts_the_templates_of_the_latest_versions(tmp_path: Path) -> None:
    with deployed_client(tmp_path, "prestarted.py") as client:
        engine = engine_of(client)
        key = key_of(engine)
        wait_until(lambda: running(engine, key) is not None, 60, "the template at deploy")
        before = running(engine, key)
        assert before is not None
        first = before.process.pid
    assert gone(first)  # stopped with the server
    with deployed_client(tmp_path) as client:  # a restart: nothing deployed, nothing called
        engine = engine_of(client)
        wait_until(lambda: running(engine, key) is not None, 60, "the template at start")
        after = running(engine, key)
        assert after is not None and after.process.pid != first
        assert call(client, 3)["parent"] == after.process.pid


def test_retired_code_has_its_template_stopped(tmp_path: Path) -> None:
    with deployed_client(tmp_path, "prestarted.py", container_idle_timeout=1.0) as client:
        engine = engine_of(client)
        old_key = key_of(engine)
        wait_until(lambda: running(engine, old_key) is not None, 60, "the first template")
        old = running(engine, old_key)
        assert old is not None and call(client, 1)["parent"] == old.process.pid
        # The same code again: the same template serves it.
        deploy(client)
        wait_until(lambda: settled(engine), 60, "the pass over the templates")
        assert running(engine, old_key) is old
        # Changed code: the old version's container stops once idle, then its template.
        deploy(client, CODE + b"\n# changed\n")
        new_key = key_of(engine)
        assert new_key != old_key
        wait_until(lambda: running(engine, new_key) is not None, 60, "the new template")
        wait_until(lambda: old_key not in engine.runtime.templates, 60, "the old one to stop")
        wait_until(lambda: gone(old.process.pid), 60, "the old template process to exit")
        new = running(engine, new_key)
        assert new is not None and call(client, 2)["parent"] == new.process.pid
        # Deleting the application stops the template of its code.
        assert client.delete(f"/applications/{APP}").status_code == 204
        wait_until(lambda: not engine.runtime.templates, 60, "the template to stop")
        wait_until(lambda: gone(new.process.pid), 60, "the template process to exit")
        assert not engine.runtime.template_starts


def test_no_templates_when_they_are_turned_off(tmp_path: Path) -> None:
    with deployed_client(tmp_path, "prestarted.py", use_templates=False) as client:
        engine = engine_of(client)
        wait_until(lambda: settled(engine), 60, "the pass over the templates")
        assert call(client, 1)["parent"] == os.getpid()  # spawned by the server (this process)
        assert not engine.runtime.templates and not engine.runtime.template_starts
