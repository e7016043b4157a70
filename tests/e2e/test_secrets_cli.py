"""End to end: ``cove secrets`` against a real ``cove server`` subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
import typer
from cryptography.fernet import Fernet

from cove.cli import secrets_cmd
from cove.engine.secrets import KEY_ENV
from cove.engine.settings import Settings
from cove.store.database import postgres_url
from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow

KEY = Fernet.generate_key().decode()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    # the server's key comes from the environment: no key file in the data folder
    proc = ServerProcess(tmp_path / "data", env={KEY_ENV: KEY})
    try:
        yield proc.start()
    finally:
        proc.kill()


def cove(server: ServerProcess, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cove.cli.main", "secrets", *args, "--server", server.url],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _stored_token(database: str) -> bytes:
    """The ciphertext of namespace default's secrets, as the server's database holds it."""
    engine = sqlalchemy.create_engine(postgres_url(database))
    try:
        with engine.connect() as conn:
            query = "SELECT token FROM secrets WHERE namespace = 'default'"
            return bytes(conn.execute(sqlalchemy.text(query)).scalar_one())
    finally:
        engine.dispose()


def test_set_list_delete(server: ServerProcess) -> None:
    value = "sk-e2e-very-secret"
    r = cove(server, "set", "OPENAI_API_KEY", stdin=value + "\n")
    assert r.returncode == 0, r.stderr
    assert "OPENAI_API_KEY" in r.stdout
    assert value not in r.stdout + r.stderr
    assert cove(server, "set", "OTHER_TOKEN", stdin="line1\nline2\n").returncode == 0

    r = cove(server, "list")
    assert r.returncode == 0, r.stderr
    assert "OPENAI_API_KEY" in r.stdout and "OTHER_TOKEN" in r.stdout
    assert value not in r.stdout

    # encrypted at rest with the environment's key; one trailing newline stripped, no more
    data = server.data_dir
    assert not (data / "secrets.key").exists()
    raw = _stored_token(Settings(data_dir=data).database())
    assert value.encode() not in raw
    stored: dict[str, Any] = json.loads(Fernet(KEY.encode()).decrypt(raw))
    assert stored == {"OPENAI_API_KEY": value, "OTHER_TOKEN": "line1\nline2"}

    r = cove(server, "delete", "OTHER_TOKEN")
    assert r.returncode == 0, r.stderr
    r = cove(server, "list")
    assert "OTHER_TOKEN" not in r.stdout and "OPENAI_API_KEY" in r.stdout


def test_errors_exit_1_with_a_message(server: ServerProcess) -> None:
    r = cove(server, "delete", "NEVER_SET")
    assert r.returncode == 1
    assert "NEVER_SET" in r.stderr and "Traceback" not in r.stderr

    r = cove(server, "set", "BAD-NAME", stdin="v\n")
    assert r.returncode == 1
    assert "invalid secret name" in r.stderr and "Traceback" not in r.stderr

    r = cove(server, "set", "EMPTY", stdin="")
    assert r.returncode == 1
    assert "empty value" in r.stderr

    r = cove(server, "list")
    assert "no secrets" in r.stdout


def test_set_prompts_hidden_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: dict[str, Any] = {}

    class Terminal:
        def isatty(self) -> bool:
            return True

        def read(self) -> str:
            raise AssertionError("a terminal is prompted, not read")

    def prompt(text: str, **kwargs: Any) -> str:
        asked.update(kwargs, text=text)
        return "typed"

    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr(typer, "prompt", prompt)
    assert secrets_cmd.read_value("TOKEN") == "typed"
    assert asked["hide_input"] is True
    assert "TOKEN" in asked["text"]
