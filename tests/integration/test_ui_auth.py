"""The dashboard on a server started with --auth: a browser signs in once with an API key,
kept in an HttpOnly cookie that counts for reading (GET) only, and sees its own namespace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cove.cli.keys_cmd import create_key_offline
from cove.engine.secrets import KEY_ENV
from cove.engine.settings import Settings
from cove.server import create_app
from tests.conftest import APPS


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, str]]:
    monkeypatch.delenv(KEY_ENV, raising=False)
    data = tmp_path / "data"
    admin: str = create_key_offline(data, "admin")["key"]
    with TestClient(create_app(Settings(data_dir=data, auth=True))) as c:
        path = APPS / "core.py"
        files = {"code": (path.name, path.read_bytes())}
        r = c.post("/applications", files=files, headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 201, r.text
        yield c, admin


def test_a_browser_without_a_key_is_sent_to_sign_in(client: tuple[TestClient, str]) -> None:
    c, _ = client
    r = c.get("/ui/apps/shout", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/login?next=%2Fui%2Fapps%2Fshout"
    page = c.get(r.headers["location"])
    assert page.status_code == 200 and 'name="key"' in page.text
    assert c.get("/ui/static/cove.css").status_code == 200  # the sign-in page's own style
    assert c.get("/applications/shout/requests").status_code == 401  # the API still says 401


def test_signing_in_keeps_the_key_in_a_strict_httponly_cookie(
    client: tuple[TestClient, str],
) -> None:
    c, admin = client
    bad = c.post("/ui/login", data={"key": "cove_nope_nope", "next": "/ui"})
    assert bad.status_code == 401 and "not valid" in bad.text
    assert "cove_key" not in c.cookies

    r = c.post(
        "/ui/login", data={"key": admin, "next": "/ui/apps/shout"}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/ui/apps/shout"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    page = c.get("/ui/apps/shout")
    assert page.status_code == 200 and "shout" in page.text
    # The cookie reads, it never acts: a POST with only the cookie is unauthenticated.
    assert c.post("/applications/shout", json="x").status_code == 401
    assert c.get("/applications/shout/requests").status_code == 200

    out = c.post("/ui/logout", follow_redirects=False)
    assert out.status_code == 303
    c.cookies.clear()
    assert c.get("/ui", follow_redirects=False).status_code == 303


def test_sign_in_goes_back_only_to_a_dashboard_page(client: tuple[TestClient, str]) -> None:
    c, admin = client
    r = c.post(
        "/ui/login", data={"key": admin, "next": "https://evil.example/"}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/ui"
