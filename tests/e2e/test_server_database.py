"""`cove server --database URL`: the store is the database the option names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy

from cove.store.database import postgres_url as database_url
from tests.conftest import APPS, ServerProcess

pytestmark = pytest.mark.slow


def test_a_server_on_database_keeps_its_requests_there(
    tmp_path: Path, server_factory: type[ServerProcess], postgres_url: str
) -> None:
    env = {"COVE_DATABASE_URL": ""}  # the option alone names the store
    server = server_factory(tmp_path / "data", env=env, args=["--database", postgres_url])
    server.start()
    server.deploy(APPS / "core.py")
    with server.client() as client:
        r = client.post("/applications/shout", params={"wait": 60}, json="hello")
        assert r.status_code == 200, r.text
        assert r.json() == "HELLO"
        request_id = r.headers["X-Cove-Request-Id"]
    engine = sqlalchemy.create_engine(database_url(postgres_url))
    query = sqlalchemy.text("SELECT id, app, status FROM requests")
    with engine.connect() as db:
        rows = [tuple(row) for row in db.execute(query)]
    engine.dispose()
    assert rows == [(request_id, "shout", "succeeded")]
    # Nothing of the store went to the data folder's SQLite file.
    assert not (tmp_path / "data" / "cove.db").exists()


def test_a_database_url_of_another_kind_is_refused_by_name(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "cove.cli.main", "server", "--data-dir", str(tmp_path),
               "--database", "mysql://root@127.0.0.1/cove"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "--database must be a postgresql://" in result.stdout + result.stderr
    assert "mysql://root@127.0.0.1/cove" in result.stdout + result.stderr
