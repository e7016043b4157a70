"""Code bundles (cove.sdk.bundle): what a deploy ships from the folder of the deployed
file, deterministically, and how an uploaded bundle is checked."""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from pathlib import Path

import pytest

from cove.engine.deployments import write_code
from cove.engine.settings import Settings
from cove.errors import InvalidInputError, PayloadTooLargeError
from cove.runtime.ray import code_files
from cove.runtime.ray_actor import materialize
from cove.sdk.bundle import (
    MANIFEST,
    MAX_BUNDLE_BYTES,
    bundle_folder,
    folder_files,
    read_bundle,
    unpack,
)
from tests.conftest import APPS

APP = "from cove import application, function\n"


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def names(data: bytes) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(data)).namelist()


def zip_of(entries: dict[str, bytes], link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
        if link is not None:
            info = zipfile.ZipInfo(link)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def test_the_folder_ships_without_caches_venvs_git_and_cove_data(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app.py": APP,
            "helpers.py": "X = 1\n",
            "pkg/__init__.py": "",
            "pkg/mod.py": "",
            "prompt.txt": "data files ship too\n",
            "__pycache__/helpers.cpython-311.pyc": b"\x00",
            "pkg/__pycache__/mod.cpython-311.pyc": b"\x00",
            "stray.pyc": b"\x00",
            ".pytest_cache/x": "",
            ".mypy_cache/x": "",
            ".ruff_cache/x": "",
            ".git/HEAD": "ref: refs/heads/main\n",
            ".venv/lib/site.py": "",
            "venv/lib/site.py": "",
            "myenv/pyvenv.cfg": "home = /usr/bin\n",
            "myenv/lib/big.py": "",
            ".cove/cove.db": b"",
            "data/cove.db": b"",
            "data/code/abc/app.py": "",
            "state/secrets.key": b"k",
        },
    )
    assert list(folder_files(tmp_path)) == [
        "app.py",
        "helpers.py",
        "pkg/__init__.py",
        "pkg/mod.py",
        "prompt.txt",
    ]


def test_gitignore_patterns_leave_files_out(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            ".gitignore": (
                "# a comment\n\n*.log\n/build/\nsecret.env\ndocs/*.md\n!docs/keep.md\n"
                "**/tmp\nmodels/**\n[ab].bin\nscratch?.py\n"
            ),
            "app.py": APP,
            "run.log": "",
            "sub/deep.log": "",
            "build/out.py": "",
            "sub/build/kept.py": "",  # /build/ is anchored at the root
            "secret.env": "",
            "sub/secret.env": "",  # unanchored: at any depth
            "docs/a.md": "",
            "docs/keep.md": "",
            "docs/more/b.md": "",  # docs/*.md does not cross folders
            "x/tmp/y.py": "",
            "models/weights.bin": "",
            "a.bin": "",
            "c.bin": "",
            "scratch1.py": "",
            "sub/.gitignore": "local.txt\n",
            "sub/local.txt": "",
            "local.txt": "",  # sub/.gitignore applies under sub/ only
        },
    )
    assert list(folder_files(tmp_path)) == [
        ".gitignore",
        "app.py",
        "c.bin",
        "docs/keep.md",
        "docs/more/b.md",
        "local.txt",
        "sub/.gitignore",
        "sub/build/kept.py",
    ]


def test_the_entry_ships_even_when_ignored(tmp_path: Path) -> None:
    write(tmp_path, {".gitignore": "*.py\n", "app.py": APP, "helpers.py": ""})
    assert names(bundle_folder(tmp_path / "app.py")) == [MANIFEST, ".gitignore", "app.py"]


def test_the_bundle_is_deterministic_and_names_its_entry(tmp_path: Path) -> None:
    write(tmp_path, {"b.py": APP, "a.py": APP, "pkg/z.py": "", "pkg/__init__.py": ""})
    first = bundle_folder(tmp_path / "b.py")
    os.utime(tmp_path / "a.py", (1_000_000, 1_000_000))  # times and order do not matter
    (tmp_path / "pkg" / "z.py").chmod(0o600)
    assert bundle_folder(tmp_path / "b.py") == first
    assert names(first) == [MANIFEST, "a.py", "b.py", "pkg/__init__.py", "pkg/z.py"]
    archive = zipfile.ZipFile(io.BytesIO(first))
    assert json.loads(archive.read(MANIFEST)) == {"entry": "b.py"}
    assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    # another entry of the same folder is another bundle (and so another code blob)
    assert bundle_folder(tmp_path / "a.py") != first
    # the server's re-pack of a bundle gives back the very same bytes
    assert read_bundle(first, None, MAX_BUNDLE_BYTES) == ("b.py", first)
    (tmp_path / "a.py").write_text(APP + "# changed\n")
    assert bundle_folder(tmp_path / "b.py") != first


def test_an_oversize_folder_is_refused_naming_limit_size_and_largest(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"app.py": APP, "models/w1.bin": b"x" * 3000, "models/w2.bin": b"x" * 2000},
    )
    write(tmp_path, {"data.csv": b"y" * 1500})
    with pytest.raises(PayloadTooLargeError) as caught:
        bundle_folder(tmp_path / "app.py", limit=4096)
    message = str(caught.value)
    assert "over the limit of 4.0 KiB (4096 bytes)" in message
    total = 3000 + 2000 + 1500 + len(APP)
    assert f"({total} bytes)" in message
    assert "largest entries: models/ 4.9 KiB, data.csv 1.5 KiB, app.py" in message
    assert ".gitignore" in message
    assert caught.value.details["limit"] == 4096 and caught.value.details["size"] == total


def test_the_client_default_limit_is_the_server_default() -> None:
    assert Settings().max_code_bytes == MAX_BUNDLE_BYTES


@pytest.mark.parametrize(
    "name", ["../evil.py", "a/../../evil.py", "/etc/evil.py", "a\\..\\evil.py", "a//b.py", "./x"]
)
def test_a_bundle_with_an_unsafe_entry_is_refused(tmp_path: Path, name: str) -> None:
    data = zip_of({"app.py": APP.encode(), name: b"print('escaped')\n"})
    with pytest.raises(InvalidInputError, match="unsafe name"):
        read_bundle(data, None, MAX_BUNDLE_BYTES)
    target = tmp_path / "deep" / "code"
    target.mkdir(parents=True)
    with pytest.raises(InvalidInputError):
        unpack(data, target)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_bundle_with_a_link_is_refused() -> None:
    data = zip_of({"app.py": APP.encode()}, link="passwd")
    with pytest.raises(InvalidInputError, match="not a regular file"):
        read_bundle(data, None, MAX_BUNDLE_BYTES)


def test_the_entry_of_an_uploaded_bundle() -> None:
    two = zip_of({"a.py": b"", "b.py": b"", "pkg/c.py": b""})
    assert read_bundle(two, "b.py", MAX_BUNDLE_BYTES)[0] == "b.py"
    with pytest.raises(InvalidInputError, match=r"entry.*a\.py, b\.py"):
        read_bundle(two, None, MAX_BUNDLE_BYTES)
    with pytest.raises(InvalidInputError, match=r"no file 'c\.py'"):
        read_bundle(two, "c.py", MAX_BUNDLE_BYTES)
    one = zip_of({"only.py": b"", "pkg/c.py": b""})
    assert read_bundle(one, None, MAX_BUNDLE_BYTES)[0] == "only.py"
    with pytest.raises(InvalidInputError, match="not a valid ZIP"):
        read_bundle(b"PK\x03\x04 not really", None, MAX_BUNDLE_BYTES)


def test_an_uploaded_bundle_over_the_limit_is_refused() -> None:
    data = zip_of({"app.py": b"", "big.bin": b"\x00" * 50_000})  # compresses to little
    with pytest.raises(PayloadTooLargeError, match=r"big\.bin 48\.8 KiB"):
        read_bundle(data, None, 4096)


def test_code_is_written_out_with_its_folders(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    write(tmp_path / "src", {"app.py": APP, "pkg/__init__.py": "", "pkg/m.py": "M = 1\n"})
    code_dir = tmp_path / "data" / "code" / "blob1"
    write_code(bundle_folder(tmp_path / "src" / "app.py"), "app.py", code_dir)
    assert (code_dir / "pkg" / "m.py").read_text() == "M = 1\n"
    # Ray actors get the same files, subfolders included
    files = code_files(code_dir)
    assert set(files) == {MANIFEST, "app.py", "pkg/__init__.py", "pkg/m.py"}
    written = materialize(f"test-{os.getpid()}-{id(files)}", files)
    try:
        assert (written / "pkg" / "m.py").read_text() == "M = 1\n"
    finally:
        import shutil

        shutil.rmtree(written, ignore_errors=True)
    with pytest.raises(InvalidInputError):
        materialize(f"test-evil-{os.getpid()}", {"../evil.py": b""})


def test_the_multimodule_test_app_bundles_its_modules_and_data() -> None:
    assert list(folder_files(APPS / "multimod")) == [
        "app.py",
        "greeting.txt",
        "helpers.py",
        "pkg/__init__.py",
        "pkg/loud.py",
        "pkg/sub.py",
    ]


def test_cove_dev_redeploys_an_app_when_a_file_beside_it_changes(tmp_path: Path) -> None:
    from cove.cli.server_cmd import _mtimes

    write(tmp_path, {"app.py": APP + "@application()\n", "helpers.py": "", "notes.md": ""})
    before = _mtimes([tmp_path])
    assert list(before) == [tmp_path / "app.py"]
    os.utime(tmp_path / "helpers.py", (1_000_000, 1_000_000))
    changed = _mtimes([tmp_path])
    assert changed != before
    (tmp_path / "notes.md").unlink()
    assert _mtimes([tmp_path]) != changed


def test_a_single_file_that_cannot_be_written_leaves_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code_dir = tmp_path / "code" / "blob2"

    def full(self: Path, target: Path) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "replace", full)
    with pytest.raises(OSError, match="No space left"):
        write_code(b"x = 1\n", "app.py", code_dir)
    assert list(code_dir.iterdir()) == []
