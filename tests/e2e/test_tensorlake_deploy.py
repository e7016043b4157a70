"""Deploying to a real ``cove server`` with Tensorlake's deploy upload,
``POST /v1/namespaces/{ns}/applications``.

With uploads made here (always run): one POST per application makes a version of that
application only, an identical re-POST makes none, validation errors answer in plain
text. With the unchanged SDK (its own venvs, installed from PyPI; skipped locally when
that fails, an error under ``COVE_PARITY_REFERENCE=required`` as in CI): the deployer of
``tensorlake==0.5.103``, the last release that can target an on-premises server
(``TENSORLAKE_ONPREM=1``), deploys tests/apps/tl_sdk.py, and the newest SDK then calls it
with ``run_remote_application`` (tests/e2e/tensorlake_driver.py) with the same outputs as
Cove's own routes.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cove.cli.keys_cmd import create_key_offline
from tests.conftest import APPS, ServerProcess, _kill_workers
from tests.e2e.test_tensorlake_sdk import drive
from tests.parity.harness import ReferenceUnavailable, reference_python

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

DEPLOYER = Path(__file__).parent / "tensorlake_deployer.py"
APP = APPS / "tl_sdk.py"
V1 = "/v1/namespaces/default/applications"
#: The last tensorlake release whose deployer can skip Tensorlake's image services.
ONPREM_SDK = "tensorlake==0.5.103"


def deployer_python() -> str:
    """The python of a venv with :data:`ONPREM_SDK`, installed from PyPI if missing."""
    from benchmarks.references import ensure_venv

    try:
        facts = ensure_venv(
            "tensorlake-0.5.103",
            lambda line: print(line, file=sys.stderr),
            spec=ONPREM_SDK,
        )
    except Exception as exc:
        why = f"{ONPREM_SDK} could not be installed into its venv: {exc}"
        if os.environ.get("COVE_PARITY_REFERENCE") == "required":
            raise AssertionError(why) from exc
        pytest.skip(why)
    return str(facts["python"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("tl-deploy")
    process = ServerProcess(root / "data").start()
    try:
        yield process
    finally:
        process.kill()
        _kill_workers(root)


def sdk_env(url: str, key: str | None = None, namespace: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TENSORLAKE_", "INDEXIFY_"))}
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    env["TENSORLAKE_API_URL"] = url
    if key is not None:
        env["TENSORLAKE_API_KEY"] = key
    if namespace is not None:
        env["INDEXIFY_NAMESPACE"] = namespace
    return env


def tensorlake_deploy(
    python: str, app_file: Path, url: str, key: str | None = None, namespace: str | None = None
) -> tuple[int, list[dict[str, Any]]]:
    """``TENSORLAKE_ONPREM=1 tensorlake-deploy APP_FILE``: its exit status and events."""
    script = Path(python).parent / "tensorlake-deploy"
    done = subprocess.run(
        [str(script), app_file.name],
        cwd=app_file.parent,
        env={**sdk_env(url, key, namespace), "TENSORLAKE_ONPREM": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert events, done.stderr[-3000:]
    return done.returncode, events


def versions(c: httpx.Client) -> dict[str, int]:
    return {a["name"]: a["version"] for a in c.get("/applications").json()["applications"]}


# -- uploads made here ------------------------------------------------------------------------
TWO_APPS = """\
from tensorlake.applications import application, function
from helpers import shout


@application()
@function()
def tl_up_first(text: str) -> str:
    return shout(text)


@application()
@function()
def tl_up_second(text: str) -> str:
    return shout(text) + "?"
"""


def code_zip(files: dict[str, str], modules: dict[str, str]) -> bytes:
    """A ZIP as the SDK makes it: its code manifest first, then the folder's files."""
    described = {"functions": {f: {"module_import_name": m, "name": f} for f, m in modules.items()}}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(".tensorlake_code_manifest.json", json.dumps(described, sort_keys=True))
        for name, text in files.items():
            z.writestr(name, text)
    return out.getvalue()


def upload(
    c: httpx.Client, code: bytes, manifest: dict[str, Any] | str, **fields: str
) -> httpx.Response:
    form = {
        "code_content_type": "application/zip",
        "application": manifest if isinstance(manifest, str) else json.dumps(manifest),
        "upgrade_requests_to_latest_code": "false",
        **fields,
    }
    return c.post(
        "/v1/namespaces/default/applications", files={"code": ("code.zip", code)}, data=form
    )


def tl_manifest(name: str, version: str = "v1") -> dict[str, Any]:
    functions = {f: {"name": f, "description": ""} for f in ("tl_up_first", "tl_up_second")}
    entrypoint = {"function_name": name, "input_serializer": "json", "output_serializer": "json"}
    return {"name": name, "version": version, "functions": functions, "entrypoint": entrypoint}


MODULES = {"tl_up_first": "two_apps", "tl_up_second": "two_apps"}
FILES = {"two_apps.py": TWO_APPS, "helpers.py": "def shout(t):\n    return t.upper()\n"}


def test_one_post_per_application_and_identical_reposts(server: ServerProcess) -> None:
    code = code_zip(FILES, MODULES)
    with server.client() as c:
        first = upload(c, code, tl_manifest("tl_up_first"))
        assert first.status_code == 200, first.text
        assert first.json()["created"] is True
        # a version of the application the POST names, not of the file's others
        assert versions(c).get("tl_up_first") == 1
        assert "tl_up_second" not in versions(c)
        # the SDK retries POSTs: the same upload again is the version already there
        again = upload(c, code, tl_manifest("tl_up_first"))
        assert again.status_code == 200, again.text
        assert again.json()["created"] is False
        assert again.json()["applications"][0]["version"] == 1
        second = upload(c, code, tl_manifest("tl_up_second"))
        assert second.status_code == 200, second.text
        assert versions(c)["tl_up_first"] == 1
        assert versions(c)["tl_up_second"] == 1
        # the uploaded manifest is what GET answers, unchanged
        assert c.get(f"{V1}/tl_up_second").json() == tl_manifest("tl_up_second")
        # the folder was deployed: the entry module imports its neighbour
        assert c.post("/applications/tl_up_second?wait=60", json="hi").json() == "HI?"
        # a new Tensorlake version of the same code: a new version (same code blob)
        newer = upload(c, code, tl_manifest("tl_up_first", version="v2"))
        assert newer.status_code == 200, newer.text
        assert versions(c)["tl_up_first"] == 2
        # a version never changes: other code under the same Tensorlake version is refused
        changed = code_zip({**FILES, "helpers.py": "def shout(t):\n    return t\n"}, MODULES)
        conflict = upload(c, changed, tl_manifest("tl_up_first", version="v2"))
        assert conflict.status_code == 409
        assert "version 'v2' of application 'tl_up_first' is already deployed" in conflict.text
        # Cove's own deploy of the file afterwards: GET builds the manifest from Cove's again
        bundle = code_zip(FILES, {})
        cove = c.post(
            "/applications",
            files={"code": ("code.zip", bundle, "application/zip")},
            data={"entry": "two_apps.py"},
        )
        assert cove.is_success, cove.text
        assert c.get(f"{V1}/tl_up_first").json()["version"] == "3"


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"application": None}, 400, "needs the form field 'application'"),
        ({"application": "{not json"}, 400, "not valid JSON"),
        ({"code": b"print('hi')\n"}, 400, "is not a ZIP archive"),
        ({"code_content_type": "application/x-tar"}, 400, "code_content_type"),
        ({"upgrade_requests_to_latest_code": "maybe"}, 400, "must be true or false"),
        ({"entry": "nowhere"}, 400, "entrypoint function 'nowhere'"),
        ({"name": "tl_up_third"}, 400, "defines no application 'tl_up_third'"),
        ({"module": "pkg.two_apps"}, 400, "from a module at the top of its folder"),
    ],
)
def test_validation_errors_in_plain_text(
    server: ServerProcess, change: dict[str, Any], status: int, message: str
) -> None:
    manifest: dict[str, Any] = tl_manifest("tl_up_first")
    modules = dict(MODULES)
    if "entry" in change:
        manifest["entrypoint"]["function_name"] = change.pop("entry")
    if "name" in change:
        name = change.pop("name")
        manifest = {**manifest, "name": name}
        manifest["functions"][name] = {"name": name}
        manifest["entrypoint"]["function_name"] = name
        modules[name] = "two_apps"
    if "module" in change:
        modules["tl_up_first"] = change.pop("module")
    code = change.pop("code", code_zip(FILES, modules))
    form = {"application": json.dumps(manifest), **change}
    files = {"code": ("code.zip", code)}
    data = {
        "code_content_type": "application/zip",
        "upgrade_requests_to_latest_code": "false",
        **{k: v for k, v in form.items() if v is not None},
    }
    with server.client() as c:
        answer = c.post("/v1/namespaces/default/applications", files=files, data=data)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    assert message in answer.text


# -- the SDK's own deployer -------------------------------------------------------------------
@pytest.fixture(scope="module")
def deployed(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """tl_sdk.py deployed twice: by ``deploy_applications`` uploading each application
    twice in one process (what a retried POST sends), then by ``tensorlake-deploy``."""
    python = deployer_python()
    folder = tmp_path_factory.mktemp("tl-app")
    app_file = Path(shutil.copy(APP, folder / APP.name))
    done = subprocess.run(
        [python, str(DEPLOYER), app_file.name, "2"],
        cwd=folder,
        env=sdk_env(server.url),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    uploaded: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    with server.client() as c:
        first = {name: versions(c).get(name) for name in uploaded}
        served = {name: c.get(f"{V1}/{name}").json() for name in uploaded}
        rc, events = tensorlake_deploy(python, app_file, server.url)
        second = {name: versions(c).get(name) for name in uploaded}
    return {
        "uploaded": uploaded,
        "first": first,
        "served": served,
        "rc": rc,
        "events": events,
        "second": second,
    }


def test_sdk_deploys_each_application_once(deployed: dict[str, Any]) -> None:
    assert "tl_greet" in deployed["uploaded"]
    # each application uploaded twice: one version each, no needless ones
    assert deployed["first"] == {name: 1 for name in deployed["uploaded"]}
    # GET answers the manifest the SDK uploaded, unchanged
    assert deployed["served"] == deployed["uploaded"]


def test_tensorlake_deploy_script_redeploys(deployed: dict[str, Any]) -> None:
    assert deployed["rc"] == 0, deployed["events"]
    assert deployed["events"][-1]["type"] == "done"
    assert not [e for e in deployed["events"] if e["type"] == "error"]
    # a new deploy is a new Tensorlake version of each application: one more version each
    assert deployed["second"] == {name: 2 for name in deployed["uploaded"]}


def test_sdk_deployed_applications_run(deployed: dict[str, Any], server: ServerProcess) -> None:
    try:
        sdk_python = reference_python()
    except ReferenceUnavailable as exc:
        pytest.skip(str(exc))
    got = drive(sdk_python, server.url, "greet", "combine", "area", "upper_file", "rejects")
    assert got["greet"]["value"] == "hello, bob"
    assert got["combine"]["value"] == {"a": 3, "b": "y", "c": [1, 2]}
    assert got["area"]["value"]["data"] == {"area": 12.0, "center": {"x": 3.0, "y": 3.5}}
    assert got["rejects"]["error"] == {"type": "RequestError", "str": "rejected input 4"}
    with server.client() as c:
        # the same requests through Cove's routes: the same outputs
        for name, app in (("greet", "tl_greet"), ("combine", "tl_combine"), ("area", "tl_area")):
            rid = got[name]["request_id"]
            cove = c.get(f"/applications/{app}/requests/{rid}/output").json()
            assert cove == c.get(f"{V1}/{app}/requests/{rid}/output").json()
        assert c.post("/applications/tl_greet?wait=60", json="bob").json() == "hello, bob"
        box = {"corner": {"x": 1, "y": 2}, "width": 4, "height": 3}
        area = c.post("/applications/tl_area?wait=60", json=box).json()
        assert area == got["area"]["value"]["data"]
        rid = got["upper_file"]["request_id"]
        out = c.get(f"/applications/tl_upper_file/requests/{rid}/output")
        assert (out.content, out.headers["content-type"]) == (b"ABC", "text/plain; upper=1")


def test_sdk_deploy_with_keys_and_a_namespace(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    python = deployer_python()
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "two_apps.py").write_text(TWO_APPS)
    (folder / "helpers.py").write_text(FILES["helpers.py"])
    data = tmp_path / "data"
    root = create_key_offline(data, "admin")["key"]
    server = server_factory(data, env={"COVE_AUTH": "true"}).start()
    with server.client() as c:
        c.headers["Authorization"] = f"Bearer {root}"
        deploy_key = c.post("/keys", json={"role": "deploy", "namespace": "team"}).json()["key"]
        invoke_key = c.post("/keys", json={"role": "invoke", "namespace": "team"}).json()["key"]
    app_file = folder / "two_apps.py"
    # an invoke key may not deploy: the deployer reports Tensorlake's "not authorized"
    rc, events = tensorlake_deploy(python, app_file, server.url, invoke_key, "team")
    assert rc != 0
    assert events[-1]["type"] == "error"
    assert "not authorized" in json.dumps(events[-1])
    # nor a key of another namespace
    rc, events = tensorlake_deploy(python, app_file, server.url, deploy_key, "default")
    assert (rc, events[-1]["type"]) == (1, "error")
    rc, events = tensorlake_deploy(python, app_file, server.url, deploy_key, "team")
    assert rc == 0, events
    with httpx.Client(base_url=server.url, timeout=120) as c:
        c.headers["Authorization"] = f"Bearer {invoke_key}"
        assert versions(c) == {"tl_up_first": 1, "tl_up_second": 1}
        assert c.post("/applications/tl_up_first?wait=60", json="yo").json() == "YO"
        manifest = c.get("/v1/namespaces/team/applications/tl_up_second").json()
        assert manifest["name"] == "tl_up_second"
