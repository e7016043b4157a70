"""Deploy safety: the uploaded code is checked before anything is written or inspected;
and bundles: a deploy ships the file's folder, so modules beside it import."""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cove.engine.settings import Settings
from cove.sdk.bundle import bundle_folder
from cove.server import create_app
from tests.conftest import APPS

GOOD = (
    b"from cove import application, function\n\n"
    b"@application()\n@function()\ndef hi() -> str:\n    return 'hi'\n"
)


def stored_code(data: Path) -> list[Path]:
    return (
        [p for p in (data / "code").rglob("*") if p.is_file()] if (data / "code").exists() else []
    )


@pytest.mark.parametrize(
    "filename", ["../evil.py", "../../evil.py", "/tmp/evil.py", "sub/evil.py", "..\\evil.py"]
)
def test_a_code_file_name_with_folders_is_refused(tmp_path: Path, filename: str) -> None:
    data = tmp_path / "data"
    with TestClient(create_app(Settings(data_dir=data))) as client:
        r = client.post("/applications", files={"code": (filename, GOOD)})
        assert r.status_code == 400, r.text
        assert "no folders" in r.json()["error"]["message"]
        assert client.get("/applications").json()["applications"] == []
    assert stored_code(data) == []
    assert not (tmp_path / "evil.py").exists() and not Path("/tmp/evil.py").exists()


def test_code_over_the_size_limit_is_413(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = Settings(data_dir=data, max_code_bytes=4096)
    big = GOOD + b"# padding\n" * 500  # 5 KB
    with TestClient(create_app(settings)) as client:
        r = client.post("/applications", files={"code": ("big.py", big)})
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "payload_too_large"
        assert client.get("/applications").json()["applications"] == []
        # just under the limit is fine
        r = client.post("/applications", files={"code": ("small.py", GOOD)})
        assert r.status_code == 201, r.text
    assert [p.name for p in stored_code(data)] == ["small.py"]


def test_a_huge_upload_is_refused_from_its_content_length(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", max_code_bytes=4096)
    with TestClient(create_app(settings)) as client:
        body = b"x" * (1024 * 1024)
        headers = {"Content-Type": "multipart/form-data; boundary=zzz"}
        r = client.post("/applications", content=body, headers=headers)
        assert r.status_code == 413, r.text
        assert client.get("/healthz").status_code == 200


# -- bundles: the deployed file's folder ------------------------------------------------
MULTIMOD = APPS / "multimod"


def zip_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, content in entries.items():
            z.writestr(name, content)
    return buffer.getvalue()


def post_bundle(client: TestClient, data: bytes, **fields: str) -> Any:
    return client.post(
        "/applications", files={"code": ("code.zip", data, "application/zip")}, data=fields
    )


def run(client: TestClient, app: str, value: Any) -> Any:
    r = client.post(f"/applications/{app}", params={"wait": 120}, json=value)
    assert r.status_code == 200, r.text
    return r.json()


def copy_app(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    shutil.copytree(MULTIMOD, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def test_a_multimodule_app_deploys_and_runs_in_containers(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path / "data"))) as client:
        r = post_bundle(client, bundle_folder(MULTIMOD / "app.py"))
        assert r.status_code == 201, r.text
        assert [a["name"] for a in r.json()["applications"]] == ["multimod"]
        # helpers.py, the package pkg/ and greeting.txt import and read in the containers
        assert run(client, "multimod", "ann") == "HELLO, ANN! (helpers)"
        engine = client.app.state.engine  # type: ignore[attr-defined]
        pool = engine.pools[("multimod", 1, "decorate")]
        assert pool.cold_starts == 1


def test_ignored_files_are_not_in_the_stored_bundle(tmp_path: Path) -> None:
    folder = copy_app(tmp_path)
    (folder / ".gitignore").write_text("*.secret\n/scratch/\n")
    extra = {
        "token.secret": "s3cr3t",
        "scratch/notes.py": "",
        "fakevenv/pyvenv.cfg": "home = /usr\n",
        "fakevenv/lib/site.py": "",
        ".venv/bin/python": "",
        "__pycache__/helpers.cpython-311.pyc": "",
        "pkg/__pycache__/loud.cpython-311.pyc": "",
        ".git/HEAD": "ref: refs/heads/main\n",
        ".cove/cove.db": "",
    }
    for rel, content in extra.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(content)
    with TestClient(create_app(Settings(data_dir=tmp_path / "data"))) as client:
        r = post_bundle(client, bundle_folder(folder / "app.py"))
        assert r.status_code == 201, r.text
        engine = client.app.state.engine  # type: ignore[attr-defined]
        version = engine.deployments.get("multimod")
        stored = zipfile.ZipFile(io.BytesIO(engine.blobs.get(version.code_blob))).namelist()
        shipped = [
            ".cove_bundle.json",
            ".gitignore",
            "app.py",
            "greeting.txt",
            "helpers.py",
            "pkg/__init__.py",
            "pkg/loud.py",
            "pkg/sub.py",
        ]
        assert stored == shipped
        written = sorted(
            p.relative_to(version.code_dir).as_posix()
            for p in version.code_dir.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        )
        assert written == shipped
        assert run(client, "multimod", "bo") == "HELLO, BO! (helpers)"


def test_an_identical_redeploy_keeps_the_code_blob_and_the_containers(tmp_path: Path) -> None:
    folder = copy_app(tmp_path)
    with TestClient(create_app(Settings(data_dir=tmp_path / "data"))) as client:
        engine = client.app.state.engine  # type: ignore[attr-defined]
        assert post_bundle(client, bundle_folder(folder / "app.py")).status_code == 201
        assert run(client, "multimod", "a") == "HELLO, A! (helpers)"
        first = engine.deployments.get("multimod")
        os.utime(folder / "helpers.py", (1_000_000, 1_000_000))  # touched, not changed
        assert post_bundle(client, bundle_folder(folder / "app.py")).status_code == 201
        second = engine.deployments.get("multimod")
        assert second.version == 2 and second.code_blob == first.code_blob
        pool = engine.pools[("multimod", 1, "decorate")]
        assert engine.pools[("multimod", 2, "decorate")] is pool  # its containers kept
        assert run(client, "multimod", "b") == "HELLO, B! (helpers)"
        assert pool.cold_starts == 1
        # a changed module is new code: a new blob
        (folder / "helpers.py").write_text(
            (folder / "helpers.py").read_text().replace("(helpers)", "(v3)")
        )
        assert post_bundle(client, bundle_folder(folder / "app.py")).status_code == 201
        third = engine.deployments.get("multimod")
        assert third.code_blob != first.code_blob
        assert run(client, "multimod", "c") == "HELLO, C! (v3)"


def test_an_oversize_bundle_is_refused_with_the_limit_size_and_largest(tmp_path: Path) -> None:
    data = tmp_path / "data"
    big = zip_of({"app.py": GOOD, "weights.bin": b"\x00" * 20_000})  # small once compressed
    assert len(big) < 4096
    with TestClient(create_app(Settings(data_dir=data, max_code_bytes=4096))) as client:
        r = post_bundle(client, big)
        assert r.status_code == 413, r.text
        error = r.json()["error"]
        assert error["code"] == "payload_too_large"
        assert "over the limit of 4.0 KiB (4096 bytes)" in error["message"]
        assert f"({20_000 + len(GOOD)} bytes)" in error["message"]
        assert "largest entries: weights.bin 19.5 KiB, app.py" in error["message"]
        assert error["limit"] == 4096 and error["largest"][0]["path"] == "weights.bin"
        assert client.get("/applications").json()["applications"] == []
    assert stored_code(data) == []


@pytest.mark.parametrize("name", ["../evil.py", "pkg/../../evil.py", "/tmp/cove-evil.py"])
def test_a_bundle_with_entries_outside_its_folder_is_refused(tmp_path: Path, name: str) -> None:
    data = tmp_path / "data"
    with TestClient(create_app(Settings(data_dir=data))) as client:
        r = post_bundle(client, zip_of({"app.py": GOOD, name: b"print('escaped')\n"}))
        assert r.status_code == 400, r.text
        assert "unsafe name" in r.json()["error"]["message"]
        assert client.get("/applications").json()["applications"] == []
    assert stored_code(data) == []
    assert not (tmp_path / "evil.py").exists() and not Path("/tmp/cove-evil.py").exists()


def test_a_hand_made_zip_names_its_entry_in_a_form_field(tmp_path: Path) -> None:
    helper = b"def word() -> str:\n    return 'hi from helper'\n"
    app = GOOD.replace(b"return 'hi'", b"return helper.word()")
    code = zip_of({"main.py": b"import helper\n" + app, "helper.py": helper, "other.py": b""})
    with TestClient(create_app(Settings(data_dir=tmp_path / "data"))) as client:
        r = post_bundle(client, code)
        assert r.status_code == 400 and "form field 'entry'" in r.json()["error"]["message"]
        # by its magic bytes, whatever the part's content type says
        r = client.post(
            "/applications",
            files={"code": ("code.zip", code, "application/octet-stream")},
            data={"entry": "main.py"},
        )
        assert r.status_code == 201, r.text
        assert run(client, "hi", None) == "hi from helper"
