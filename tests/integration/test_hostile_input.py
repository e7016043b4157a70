"""Hostile input: each gets a clear 4xx, the server stays healthy and nothing is stored."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from cove.engine.secrets import KEY_ENV
from cove.engine.settings import Settings
from cove.server import create_app
from tests.conftest import APPS

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp("hostile") / "data"
    settings = Settings(data_dir=data, max_json_bytes=64 * 1024, max_headers=40)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(KEY_ENV, raising=False)
        with TestClient(create_app(settings)) as c:
            assert c.put("/secrets/API_TOKEN", json={"value": "v"}).status_code == 204
            code = {"code": ("guarded.py", (APPS / "guarded.py").read_bytes())}
            assert c.post("/applications", files=code).status_code == 201
            yield c


def unchanged(client: TestClient) -> None:
    """Healthy, with no request recorded and the secrets as they were."""
    assert client.get("/healthz").status_code == 200
    assert client.get("/applications/echo/requests").json()["requests"] == []
    assert client.get("/secrets").json() == {"secrets": [{"name": "API_TOKEN"}]}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"text": ', "not valid JSON"),
        (b'{"text": 5}', "does not match"),
        (b'{"text": ["a"]}', "does not match"),
        (b"[" * 30_000 + b"]" * 30_000, "nested deeper"),
        (b'{"text": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested deeper"),
        (b'{"text": ' + b"[" * 65 + b"]" * 65 + b"}", "nested deeper"),
        (b'{"text": ' + b"9" * 50_000 + b"}", "digits"),
        (b'{"text": 1e999999}', "out of range"),
        (b'{"text": NaN}', "NaN is not JSON"),
        (b'"\xff\xfe"', "utf-8"),
        (b"\x00\x01\x02", "not valid JSON"),
    ],
    ids=[
        "malformed",
        "wrong-type",
        "wrong-type-list",
        "deep-array",
        "deep-in-object",
        "just-too-deep",
        "huge-int",
        "huge-float",
        "nan",
        "invalid-utf8",
        "binary",
    ],
)
def test_bad_json_is_400(client: TestClient, body: bytes, says: str) -> None:
    r = client.post("/applications/echo", content=body, headers=JSON)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_input"
    assert says in error["message"]
    unchanged(client)


def test_a_json_body_over_the_limit_is_413(client: TestClient) -> None:
    big = b'{"text": "' + b"x" * (65 * 1024) + b'"}'
    r = client.post("/applications/echo", content=big, headers=JSON)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"text": "'
        for _ in range(70):
            yield b"x" * 1024
        yield b'"}'

    r = client.post("/applications/echo", content=chunks(), headers=JSON)
    assert r.status_code == 413, r.text
    r = client.put("/secrets/API_TOKEN", content=big, headers=JSON)
    assert r.status_code == 413
    unchanged(client)


def test_too_many_headers_is_431(client: TestClient) -> None:
    headers = {f"x-filler-{i}": "v" for i in range(60)}
    r = client.post("/applications/echo", json="hi", headers=headers)
    assert r.status_code == 431, r.text
    assert r.json()["error"]["code"] == "headers_too_large"
    unchanged(client)


@pytest.mark.parametrize(
    "body",
    [
        b'--zzz\r\nContent-Disposition: form-data; name="text"\r\n\r\n"abc',  # cut in a part
        b'--zzz\r\nContent-Disposition: form-data; name="text"\r\n',  # cut in the headers
        b"--zzz",  # nothing but a boundary
        b"not multipart at all",
    ],
)
def test_truncated_multipart_is_400(client: TestClient, body: bytes) -> None:
    headers = {"Content-Type": "multipart/form-data; boundary=zzz"}
    r = client.post("/applications/echo", content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_input"
    unchanged(client)


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("PUT", "/secrets/X", {"content": b"[" * 10_000, "headers": JSON}),
        ("PUT", "/secrets/X", {"content": b'{"value": 1e400}', "headers": JSON}),
        ("PUT", "/secrets/X", {"content": b"\xff", "headers": JSON}),
        ("GET", "/applications/echo/requests?limit=99999999999999999999999", {}),
        ("GET", "/applications/echo/requests?cursor=%ff%fe", {}),
        ("POST", "/applications/echo?wait=1e999", {"json": "x"}),
        ("POST", "/applications/echo?wait=-1", {"json": "x"}),
    ],
)
def test_wrong_parameters_and_bodies_elsewhere_are_4xx(
    client: TestClient, method: str, path: str, kwargs: dict[str, object]
) -> None:
    r = client.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert 400 <= r.status_code < 500, r.text
    unchanged(client)
