"""Deploy safety: the uploaded code is checked before anything is written or inspected."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cove.engine.settings import Settings
from cove.server import create_app

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
