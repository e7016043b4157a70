"""A real ``cove server --auth`` against event-stream floods and slow clients; and the
command line refusing to expose a server without auth."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cove.cli.keys_cmd import create_key_offline
from tests.conftest import APPS, ServerProcess, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_event_streams_per_key_and_stalled_bodies(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    data = tmp_path / "data"
    admin = create_key_offline(data, "admin")["key"]
    env = {"COVE_AUTH": "true", "COVE_MAX_STREAMS_PER_KEY": "2", "COVE_BODY_TIMEOUT": "1"}
    server = server_factory(data, env=env).start()
    assert "every API call needs an API key" in server.log.read_text()
    flag = tmp_path / "flag"
    with server.client() as c:
        c.headers.update(bearer(admin))
        code = {"code": ("forger.py", (APPS / "forger.py").read_bytes())}
        assert c.post("/applications", files=code).status_code == 201
        other = c.post("/keys", json={"role": "invoke"}).json()["key"]
        rid = c.post("/applications/victim", json=str(flag)).json()["request_id"]
        wait_until(lambda: (tmp_path / "victim-ready").exists(), what="the victim to run")
    url = f"{server.url}/applications/victim/requests/{rid}/progress"

    def open_stream(client: httpx.Client, key: str) -> httpx.Response:
        return client.send(client.build_request("GET", url, headers=bearer(key)), stream=True)

    with httpx.Client(timeout=60) as a, httpx.Client(timeout=60) as b:
        first, second = open_stream(a, admin), open_stream(b, admin)
        assert first.status_code == second.status_code == 200
        lines = first.iter_lines()  # kept: dropping it would close the stream
        assert next(lines).startswith("retry:")  # live and streaming
        with httpx.Client(timeout=60) as c:
            third = c.get(url, headers=bearer(admin))
            assert third.status_code == 429, third.text
            assert third.json()["error"]["code"] == "too_many_requests"
            # another key has streams of its own
            own = open_stream(c, other)
            assert own.status_code == 200
            own.close()
        first.close()
        with httpx.Client(timeout=60) as c:

            def a_stream_is_free() -> bool:
                r = c.get(url, headers=bearer(admin), params={"format": "json"})
                if r.status_code != 200:
                    return False
                again = open_stream(c, admin)
                again.close()
                return again.status_code == 200

            wait_until(a_stream_is_free, what="the closed stream to be released")
        second.close()

    # a body that stops arriving: 408 after body_timeout, and the server goes on
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            b"PUT /secrets/SLOW HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + admin.encode() + b"\r\nContent-Length: 100\r\n\r\n"
            b'{"value": '
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    flag.touch()
    with server.client() as c:
        c.headers.update(bearer(admin))
        assert c.get("/healthz").status_code == 200
        assert c.get("/secrets").json() == {"secrets": []}
        r = c.get(f"/applications/victim/requests/{rid}/output", params={"wait": 60})
        assert r.json() == {"secret": "victim-data"}


def test_listening_beyond_this_machine_needs_auth(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "cove.cli.main", "server", "--host", "0.0.0.0"]
    done = subprocess.run(
        [*cmd, "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "refusing to listen on 0.0.0.0 without --auth" in done.stdout + done.stderr
