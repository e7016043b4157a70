"""The unchanged ``tensorlake`` SDK (its own venv, 0.5.163) against a real ``cove server``:
``TENSORLAKE_API_URL`` points at Cove, and ``run_remote_application`` runs applications
deployed through Cove (tests/apps/tl_sdk.py), with the driver tests/e2e/tensorlake_driver.py.
Also: the same request through Cove's routes and through ``/v1/...``; Tensorlake's progress
events; keys and namespaces under ``--auth``."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cove.cli.keys_cmd import create_key_offline
from tests.conftest import APPS, ServerProcess, _kill_workers
from tests.parity.harness import ReferenceUnavailable, reference_python

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DRIVER = Path(__file__).parent / "tensorlake_driver.py"
APP = APPS / "tl_sdk.py"
V1 = "/v1/namespaces/default/applications"


@pytest.fixture(scope="module")
def sdk_python() -> str:
    try:
        return reference_python()
    except ReferenceUnavailable as exc:
        pytest.skip(str(exc))


def drive(
    python: str, url: str, *scenarios: str, key: str | None = None, namespace: str | None = None
) -> dict[str, Any]:
    """Run scenarios of the driver with the SDK's python; their results by name."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TENSORLAKE_", "INDEXIFY_"))}
    env.pop("VIRTUAL_ENV", None)
    env.update(TENSORLAKE_API_URL=url, PYTHONPATH=str(APPS))
    if key is not None:
        env["TENSORLAKE_API_KEY"] = key
    if namespace is not None:
        env["INDEXIFY_NAMESPACE"] = namespace
    done = subprocess.run(
        [python, str(DRIVER), *scenarios],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("tl-sdk")
    process = ServerProcess(root / "data").start()
    try:
        process.deploy(APP)
        yield process
    finally:
        process.kill()
        _kill_workers(root)


SCENARIOS = (
    "hello",
    "greet",
    "combine",
    "combine_keyword",
    "combine_extra",
    "upper_file",
    "stamp_file",
    "area",
    "fails",
    "rejects",
    "steps",
    "missing",
    "apps",
)


@pytest.fixture(scope="module")
def results(sdk_python: str, server: ServerProcess) -> dict[str, Any]:
    return drive(sdk_python, server.url, *SCENARIOS)


def file_of(value: dict[str, Any]) -> tuple[bytes, str]:
    f = value["file"]
    return base64.b64decode(f["content_b64"]), f["content_type"]


def test_no_argument_and_one_json_argument(results: dict[str, Any]) -> None:
    assert results["hello"]["value"] == "hello from cove"
    assert results["greet"]["value"] == "hello, bob"


def test_positional_and_keyword_arguments(results: dict[str, Any]) -> None:
    assert results["combine"]["value"] == {"a": 3, "b": "y", "c": [1, 2]}
    assert results["combine_keyword"]["value"] == {"a": 5, "b": "x", "c": None}
    # as on Tensorlake: positions past the last parameter and unknown keywords are dropped
    assert results["combine_extra"]["value"] == {"a": 7, "b": "z", "c": [9]}


def test_file_in_and_out(results: dict[str, Any]) -> None:
    assert file_of(results["upper_file"]["value"]) == (b"ABC", "text/plain; upper=1")
    # a File among several arguments: a multipart part with its own content type
    assert file_of(results["stamp_file"]["value"]) == (b"S1:%PDF", "application/x-stamped")


def test_pydantic_models_in_and_out(results: dict[str, Any]) -> None:
    # the output decodes into the application's own model class, as on Tensorlake
    assert results["area"]["value"] == {
        "model": "Area",
        "data": {"area": 12.0, "center": {"x": 3.0, "y": 3.5}},
    }


def test_failures_raise_the_sdk_exceptions(results: dict[str, Any]) -> None:
    assert results["fails"]["error"] == {"type": "RequestFailed", "str": "function_error"}
    assert results["rejects"]["error"] == {"type": "RequestError", "str": "rejected input 4"}
    missing = results["missing"]["error"]
    assert missing["type"] == "RemoteAPIError"
    assert missing["str"] == "application 'no_such_app' not found (Status Code: 404)"


def test_applications_list(results: dict[str, Any]) -> None:
    assert "tl_greet" in results["apps"]["names"]
    assert "tl_area" in results["apps"]["names"]


def test_request_not_finished_while_running(
    sdk_python: str, server: ServerProcess, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    found = drive(sdk_python, server.url, f"not_finished={release}")["not_finished"]
    assert found["early"] == {
        "type": "RequestNotFinished",
        "str": "Request is still in progress, its output is not ready yet.",
    }
    assert found["value"] == "released"


def test_same_request_through_cove_and_v1(results: dict[str, Any], server: ServerProcess) -> None:
    with server.client() as c:
        # invoked through /v1 by the SDK, read through Cove's routes
        rid = results["area"]["request_id"]
        cove = c.get(f"/applications/tl_area/requests/{rid}").json()
        assert (cove["id"], cove["status"]) == (rid, "succeeded")
        cove_out = c.get(f"/applications/tl_area/requests/{rid}/output")
        v1_out = c.get(f"{V1}/tl_area/requests/{rid}/output")
        assert cove_out.content == v1_out.content
        assert json.loads(v1_out.content) == {"area": 12.0, "center": {"x": 3.0, "y": 3.5}}
        # a File output: the same bytes and content type either way
        rid = results["upper_file"]["request_id"]
        for base in ("/applications", V1):
            out = c.get(f"{base}/tl_upper_file/requests/{rid}/output")
            assert (out.content, out.headers["content-type"]) == (b"ABC", "text/plain; upper=1")
        # invoked through Cove's route, read through /v1
        rid = c.post("/applications/tl_greet?wait=60", json="ann").headers["x-cove-request-id"]
        v1 = c.get(f"{V1}/tl_greet/requests/{rid}").json()
        assert (v1["id"], v1["outcome"], v1["request_error"]) == (rid, "success", None)
        assert v1["application_version"] == "1"
        assert isinstance(v1["created_at"], int)
        assert [(r["name"], r["status"], r["outcome"]) for r in v1["function_runs"]] == [
            ("tl_greet", "completed", "success")
        ]
        assert c.get(f"{V1}/tl_greet/requests/{rid}/output").json() == "hello, ann"
        # failures: Cove's reasons as Tensorlake's outcome
        rid = results["rejects"]["request_id"]
        v1 = c.get(f"{V1}/tl_rejects/requests/{rid}").json()
        assert v1["outcome"] == {"failure": "request_error"}
        assert v1["request_error"] == {"function_name": "tl_rejects", "message": "rejected input 4"}
        assert c.get(f"/applications/tl_rejects/requests/{rid}").json()["status"] == "failed"
        rid = results["fails"]["request_id"]
        v1 = c.get(f"{V1}/tl_fails/requests/{rid}").json()
        assert (v1["outcome"], v1["request_error"]) == ({"failure": "function_error"}, None)
        listed = c.get(f"{V1}/tl_greet/requests").json()["requests"]
        assert rid not in [r["id"] for r in listed]
        assert results["greet"]["request_id"] in [r["id"] for r in listed]
        assert c.get(f"{V1}/tl_greet/requests/nope").status_code == 404


def sse_events(response: httpx.Response, until: str = "RequestFinished") -> Iterator[Any]:
    """The JSON of each ``data:`` line (and ``"keep-alive"`` for comments), up to ``until``."""
    for line in response.iter_lines():
        if line.startswith(":"):
            yield "keep-alive"
        elif line.startswith("data:"):
            event = json.loads(line[5:])
            yield event
            if until in event:
                return


def test_progress_stream(results: dict[str, Any], server: ServerProcess, tmp_path: Path) -> None:
    rid = results["steps"]["request_id"]
    url = f"{server.url}{V1}/tl_steps/requests/{rid}/progress"
    with httpx.Client(timeout=30) as c, c.stream("GET", url) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [e for e in sse_events(r) if e != "keep-alive"]
    names = [next(iter(e)) for e in events]
    assert names == [
        "RequestStarted",
        "FunctionRunCreated",
        *["RequestProgressUpdated"] * 3,
        "FunctionRunCompleted",
        "RequestFinished",
    ]
    assert [e["RequestProgressUpdated"]["message"] for e in events[2:5]] == [
        f"step {i} of 3" for i in (1, 2, 3)
    ]
    finished = events[-1]["RequestFinished"]
    assert (finished["request_id"], finished["outcome"]) == (rid, "success")

    # live: keep-alive comments while it runs, then RequestFinished
    release = tmp_path / "release"
    with server.client() as c:
        rid = c.post(f"{V1}/tl_wait", json=str(release)).json()["request_id"]
    url = f"{server.url}{V1}/tl_wait/requests/{rid}/progress"
    with httpx.Client(timeout=30) as c, c.stream("GET", url) as r:
        seen = []
        for event in sse_events(r):
            seen.append(event if event == "keep-alive" else next(iter(event)))
            if event == "keep-alive" and not release.exists():
                release.write_text("go")
    assert seen[0] == "RequestStarted"
    assert "keep-alive" in seen
    assert seen[-1] == "RequestFinished"


def test_invoke_streaming_and_cancel(server: ServerProcess, tmp_path: Path) -> None:
    with server.client() as c:
        # Accept: text/event-stream on the invoke: the progress stream at once
        with c.stream(
            "POST", f"{V1}/tl_greet", json="eve", headers={"Accept": "text/event-stream"}
        ) as r:
            events = [e for e in sse_events(r) if e != "keep-alive"]
        assert events[-1]["RequestFinished"]["outcome"] == "success"
        rid = events[-1]["RequestFinished"]["request_id"]
        assert c.get(f"/applications/tl_greet/requests/{rid}/output").json() == "hello, eve"
        # DELETE .../requests/{id} cancels a running request
        rid = c.post(f"{V1}/tl_wait", json=str(tmp_path / "never")).json()["request_id"]
        assert c.delete(f"{V1}/tl_wait/requests/{rid}").status_code == 200
        assert c.get(f"/applications/tl_wait/requests/{rid}").json()["status"] == "cancelled"
        assert c.get(f"{V1}/tl_wait/requests/{rid}").json()["outcome"] == {"failure": "cancelled"}
        again = c.delete(f"{V1}/tl_wait/requests/{rid}")
        assert again.status_code == 409
        assert "already cancelled" in again.text


def test_manifest_and_applications_pages(server: ServerProcess) -> None:
    with server.client() as c:
        manifest = c.get(f"{V1}/tl_stamp_file").json()
        assert manifest["name"] == "tl_stamp_file"
        assert manifest["version"] == "1"
        entry = manifest["entrypoint"]
        assert (entry["function_name"], entry["input_serializer"]) == ("tl_stamp_file", "json")
        params = manifest["functions"]["tl_stamp_file"]["parameters"]
        assert [(p["name"], p["required"]) for p in params] == [("doc", True), ("stamp", True)]
        first = c.get("/v1/namespaces/default/applications", params={"limit": 4}).json()
        rest = c.get(
            "/v1/namespaces/default/applications", params={"cursor": first["cursor"]}
        ).json()
        names = [a["name"] for a in first["applications"] + rest["applications"]]
        assert names == sorted(p.removeprefix("def ") for p in _app_names())
        assert rest["cursor"] is None


def _app_names() -> list[str]:
    lines = APP.read_text().splitlines()
    return [lines[i + 2].split("(")[0] for i, line in enumerate(lines) if line == "@application()"]


def test_auth_keys_and_namespaces(
    sdk_python: str, tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    data = tmp_path / "data"
    root = create_key_offline(data, "admin")["key"]
    server = server_factory(data, env={"COVE_AUTH": "true"}).start()
    with server.client() as c:
        c.headers["Authorization"] = f"Bearer {root}"
        made = c.post("/keys", json={"role": "admin", "namespace": "team"})
        team = made.json()["key"]
        c.headers["Authorization"] = f"Bearer {team}"
        assert c.post("/applications", files={"code": (APP.name, APP.read_bytes())}).is_success
        c.put("/secrets/SOME_SECRET", json={"value": "x"})
        assert c.get("/v1/namespaces/team/secrets").json()["items"] == [{"name": "SOME_SECRET"}]

    got = drive(sdk_python, server.url, "greet", "area", key=team, namespace="team")
    assert got["greet"]["value"] == "hello, bob"
    assert got["area"]["value"]["data"]["area"] == 12.0

    for key, namespace in (
        ("cove_000000000000_wrongwrongwrongwrongwrong", "team"),  # not a key: 401
        (root, "team"),  # a key of another namespace: 403
        (team, "default"),
    ):
        failed = drive(sdk_python, server.url, "greet", key=key, namespace=namespace)["greet"]
        assert failed["error"]["type"] == "SDKUsageError", failed
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/v1/namespaces/team/applications/tl_greet").status_code == 401
        bad = c.get(
            "/v1/namespaces/team/applications/tl_greet", headers={"Authorization": "Bearer nope"}
        )
        assert bad.status_code == 401
        other = c.get(
            "/v1/namespaces/team/applications/tl_greet", headers={"Authorization": f"Bearer {root}"}
        )
        assert other.status_code == 403
        # deleting through /v1: gone through Cove's routes too
        team_auth = {"Authorization": f"Bearer {team}"}
        assert c.delete("/v1/namespaces/team/applications/tl_hello", headers=team_auth).is_success
        assert (
            c.get("/v1/namespaces/team/applications/tl_hello", headers=team_auth).status_code == 404
        )
        assert c.get("/applications/tl_hello", headers=team_auth).status_code == 404
        assert c.get("/applications/tl_greet", headers=team_auth).status_code == 200
