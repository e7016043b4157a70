"""Image builds recorded in the database: every replica lists the same images, and one that
lacks an image a deploy built elsewhere builds it when a call needs it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cove.engine.settings import Settings
from cove.server import create_app
from tests.conftest import APPS

# Images built here as virtual environments: the local runtime's (see test_images.py).
pytestmark = pytest.mark.local_runtime_only


def files(name: str) -> dict[str, tuple[str, bytes]]:
    path = APPS / name
    return {"code": (path.name, path.read_bytes())}


@pytest.fixture
def replicas(tmp_path: Path, postgres_url: str) -> Iterator[list[TestClient]]:
    """Two servers in this process over one PostgreSQL database, each its own data folder."""
    with ExitStack() as stack:
        clients = []
        for name in ("a", "b"):
            settings = Settings(
                data_dir=tmp_path / name,
                database_url=postgres_url,
                blob_url=f"file://{tmp_path / 'blobs'}",
            )
            clients.append(stack.enter_context(TestClient(create_app(settings))))
        yield clients


def test_an_image_built_on_one_replica_is_built_on_another_when_needed(
    tmp_path: Path, replicas: list[TestClient]
) -> None:
    a, b = replicas
    assert a.post("/applications", files=files("imaged.py")).status_code == 201  # builds on A
    listed = a.get("/images").json()["images"]
    assert [(i["name"], i["status"]) for i in listed] == [("with-module", "ready")]
    assert "building image with-module" in listed[0]["log"]
    assert b.get("/images").json()["images"] == listed  # the same list on every replica
    assert not (tmp_path / "b" / "images" / listed[0]["hash"]).exists()

    # B runs a request of that application: it builds the image first, then runs the call.
    r = b.post("/applications/images_app", params={"wait": 120})
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    assert out["in"]["value"] == 42 and out["in"]["greeting"] == "hello from the image"
    assert out["in"]["prefix"] == str(tmp_path / "b" / "images" / listed[0]["hash"])
    again = a.get("/images").json()["images"]
    assert [(i["hash"], i["status"]) for i in again] == [(listed[0]["hash"], "ready")]
    assert again[0]["built_at"] >= listed[0]["built_at"]  # B's build is the latest
    assert b.get("/images").json()["images"] == again


def test_a_lost_image_folder_is_built_again_and_a_failed_build_is_listed(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "data", container_idle_timeout=0.5)
    with TestClient(create_app(settings)) as client:
        built = client.post("/images", files=files("imaged.py")).json()["images"]
        assert client.post("/applications", files=files("imaged.py")).status_code == 201
        shutil.rmtree(built[0]["path"])  # the folder is gone (a new disk, a cleanup)
        r = client.post("/applications/images_app", params={"wait": 120})
        assert r.status_code == 200, r.text
        assert r.json()["in"]["value"] == 42
        assert Path(built[0]["path"], "image.json").exists()

        assert client.post("/images", files=files("bad_image.py")).status_code == 400
        by_name = {i["name"]: i for i in client.get("/images").json()["images"]}
        assert by_name["with-module"]["status"] == "ready"
        broken = next(i for name, i in by_name.items() if name != "with-module")
        assert broken["status"] == "failed"
        assert "preparing the broken image" in broken["log"]
