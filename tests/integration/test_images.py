"""Images as isolated environments: built once per content hash, each function in its own,
and a failed build fails the deploy with the end of its log."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cove.engine.settings import Settings
from cove.server import create_app
from tests.conftest import APPS, RUNTIME

# Images are built here as virtual environments: on the local runtime. On Ray an image is the
# actor's pip runtime environment (tests/unit/test_ray_runtime.py, and the last test here).
local_images = pytest.mark.local_runtime_only


def files(name: str) -> dict[str, tuple[str, bytes]]:
    path = APPS / name
    return {"code": (path.name, path.read_bytes())}


@local_images
def test_functions_run_in_their_own_image(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path))) as client:
        built = client.post("/images", files=files("imaged.py"))
        assert built.status_code == 200, built.text
        (image,) = built.json()["images"]
        assert image["name"] == "with-module" and Path(image["path"]).is_dir()
        assert (Path(image["path"]) / "build.log").exists()
        assert client.post("/applications", files=files("imaged.py")).status_code == 201
        out = client.post("/applications/images_app", params={"wait": 120}).json()
        assert out["in"]["value"] == 42
        assert out["in"]["greeting"] == "hello from the image"
        assert out["in"]["prefix"] == image["path"] and out["in"]["prefix"] != sys.prefix
        # The workdir is a folder of the image's own files, wherever the server started.
        assert out["in"]["cwd"] == str(Path(image["path"]) / "files" / "app")
        assert out["outside"] == {"has_module": False, "greeting": None}
        # The same image content is built once: a second build finds it.
        again = client.post("/images", files=files("imaged.py")).json()["images"]
        assert again == built.json()["images"]


@local_images
def test_a_failing_image_build_fails_the_deploy(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path))) as client:
        r = client.post("/applications", files=files("bad_image.py"))
        assert r.status_code == 400
        message = r.json()["error"]["message"]
        assert "exit code 3" in message and "preparing the broken image" in message
        assert client.get("/applications/never_deployed").status_code == 404


@pytest.mark.skipif(RUNTIME != "ray", reason="about the Ray runtime (COVE_TEST_RUNTIME=ray)")
def test_on_ray_an_image_step_ray_cannot_run_fails_the_deploy_by_name(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path))) as client:
        r = client.post("/applications", files=files("imaged.py"))
        assert r.status_code == 400, r.text
        message = r.json()["error"]["message"]
        assert "in_image: image step run(" in message
        assert "cannot run on the Ray runtime" in message
        assert client.get("/applications/images_app").status_code == 404


@pytest.mark.skipif(RUNTIME != "ray", reason="about the Ray runtime (COVE_TEST_RUNTIME=ray)")
def test_on_ray_an_image_is_the_actors_environment_not_a_build_on_the_server(
    tmp_path: Path,
) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path))) as client:
        r = client.post("/applications", files=files("env_image.py"))
        assert r.status_code == 201, r.text
        out = client.post("/applications/env_imaged", params={"wait": 120})
        assert out.status_code == 200, out.text
        assert out.json() == {"greeting": "hello from the image", "prefix": sys.prefix}
        # Nothing was built on the server: Ray makes the actor's environment.
        assert client.get("/images").json()["images"] == []
        assert not (tmp_path / "images").exists() or not any((tmp_path / "images").iterdir())
