"""Relative paths in settings are made absolute where they enter, from the directory the
command runs in: containers run in their code's folder and must see the same places."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.engine.settings import Settings


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("COVE_DATA_DIR", "COVE_BLOB_URL", "COVE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_the_default_data_folder_is_dot_cove_where_the_command_runs(here: Path) -> None:
    settings = Settings()
    assert settings.data_dir == here / ".cove"
    assert settings.database() == f"sqlite:///{here / '.cove' / 'cove.db'}"


def test_a_relative_data_folder_from_an_argument_or_the_environment(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings(data_dir=Path("state")).data_dir == here / "state"
    assert Settings(data_dir=Path("../up")).data_dir == here.parent / "up"
    monkeypatch.setenv("COVE_DATA_DIR", "from-env")
    assert Settings().data_dir == here / "from-env"


def test_an_assigned_data_folder_is_made_absolute_too(here: Path) -> None:
    settings = Settings()
    settings.data_dir = Path("later")
    assert settings.data_dir == here / "later"


@pytest.mark.parametrize(
    ("given", "where"),
    [
        ("file:blobs", "blobs"),
        ("file:./nested/blobs", "nested/blobs"),
        ("plain/folder", "plain/folder"),
    ],
)
def test_a_relative_local_blob_url(here: Path, given: str, where: str) -> None:
    assert Settings(blob_url=given).blob_url == (here / where).as_uri()


@pytest.mark.parametrize("given", ["file:///srv/blobs", "s3://bucket/prefix"])
def test_absolute_and_remote_blob_urls_are_kept(here: Path, given: str) -> None:
    assert Settings(blob_url=given).blob_url == given


def test_a_relative_sqlite_url(here: Path) -> None:
    assert Settings(database_url="sqlite:///db/cove.db").database() == (
        f"sqlite:///{here / 'db' / 'cove.db'}"
    )
    kept = "postgresql://cove@127.0.0.1/cove"
    assert Settings(database_url=kept).database() == kept
