"""HTTP client of a Cove server, used by ``run_remote_application`` and the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from cove.errors import CoveError, InternalError, UnavailableError, error_from_dict
from cove.sdk.bundle import CONTENT_TYPE as BUNDLE_CONTENT_TYPE
from cove.sdk.bundle import MAX_BUNDLE_BYTES, bundle_folder
from cove.sdk.file import File

DEFAULT_URL = "http://127.0.0.1:8900"


def server_url(explicit: str | None = None) -> str:
    """The server URL: the argument, else ``COVE_URL``, else the default."""
    return (explicit or os.environ.get("COVE_URL") or DEFAULT_URL).rstrip("/")


def auth_headers(api_key: str | None = None) -> dict[str, str]:
    """``Authorization`` for the API key given, else ``COVE_API_KEY``; none without one."""
    key = api_key or os.environ.get("COVE_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


class Client:
    """A thin client over the HTTP API; errors come back as :class:`cove.CoveError`.
    Sends the API key given, else ``COVE_API_KEY`` (servers started with ``--auth``)."""

    def __init__(
        self, url: str | None = None, timeout: float = 60.0, api_key: str | None = None
    ) -> None:
        self.url = server_url(url)
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=auth_headers(api_key))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise UnavailableError(f"cannot reach the Cove server at {self.url}: {exc}") from None
        if response.status_code >= 400 and response.status_code != 202:
            raise _error_of(response)
        return response

    # -- applications -------------------------------------------------------------------
    def deploy(self, path: Path, max_bytes: int = MAX_BUNDLE_BYTES) -> dict[str, Any]:
        """Deploy the Python file ``path`` with its folder (a bundle: modules and packages
        beside it import normally; see :mod:`cove.sdk.bundle` for what is left out).
        Raises :class:`cove.errors.PayloadTooLargeError` before uploading a bundle over
        ``max_bytes`` (the server's default limit)."""
        result: dict[str, Any] = self._send(
            "POST", "/applications", files=_code_files(path, max_bytes)
        ).json()
        return result

    def build_images(self, path: Path, max_bytes: int = MAX_BUNDLE_BYTES) -> list[dict[str, Any]]:
        files = _code_files(path, max_bytes)
        images: list[dict[str, Any]] = self._send("POST", "/images", files=files).json()["images"]
        return images

    def applications(self) -> list[dict[str, Any]]:
        apps: list[dict[str, Any]] = self._send("GET", "/applications").json()["applications"]
        return apps

    def application(self, app: str) -> dict[str, Any]:
        result: dict[str, Any] = self._send("GET", f"/applications/{app}").json()
        return result

    def functions(self, app: str) -> dict[str, Any]:
        result: dict[str, Any] = self._send("GET", f"/applications/{app}/functions").json()
        return result

    def delete_application(self, app: str) -> None:
        self._send("DELETE", f"/applications/{app}")

    # -- requests -----------------------------------------------------------------------
    def invoke(
        self,
        app: str,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        wait: float | None = None,
    ) -> httpx.Response:
        params = {"wait": str(wait)} if wait is not None else None
        return self._send(
            "POST",
            f"/applications/{app}",
            content=content,
            headers=headers,
            data=data,
            files=files,
            params=params,
            timeout=None if wait is None else wait + 30,
        )

    def request(self, app: str, request_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._send(
            "GET", f"/applications/{app}/requests/{request_id}"
        ).json()
        return result

    def requests(self, app: str, limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        result: dict[str, Any] = self._send(
            "GET", f"/applications/{app}/requests", params=params
        ).json()
        return result

    def cancel(self, app: str, request_id: str) -> None:
        self._send("DELETE", f"/applications/{app}/requests/{request_id}")

    def replay(self, app: str, request_id: str, upgrade: bool = False) -> dict[str, Any]:
        params = {"upgrade": "true"} if upgrade else None
        result: dict[str, Any] = self._send(
            "POST", f"/applications/{app}/requests/{request_id}/replay", params=params
        ).json()
        return result

    def output(self, app: str, request_id: str, wait: float | None = None) -> httpx.Response:
        params = {"wait": str(wait)} if wait is not None else None
        return self._send(
            "GET",
            f"/applications/{app}/requests/{request_id}/output",
            params=params,
            timeout=None if wait is None else wait + 30,
        )

    # -- secrets ------------------------------------------------------------------------
    def set_secret(self, name: str, value: str) -> None:
        """Create or replace secret ``name`` (encrypted on the server)."""
        self._send("PUT", f"/secrets/{quote(name, safe='')}", json={"value": value})

    def secrets(self) -> list[str]:
        """The names of the server's secrets (never their values), sorted."""
        items: list[dict[str, Any]] = self._send("GET", "/secrets").json()["secrets"]
        return [str(item["name"]) for item in items]

    def delete_secret(self, name: str) -> None:
        """Delete secret ``name``; :class:`cove.errors.NotFoundError` if there is none."""
        self._send("DELETE", f"/secrets/{quote(name, safe='')}")

    # -- API keys -----------------------------------------------------------------------
    def create_key(
        self, role: str, namespace: str | None = None, name: str | None = None
    ) -> dict[str, Any]:
        """A new API key (admin keys only): its record, with ``key`` shown this once."""
        body: dict[str, Any] = {"role": role, "name": name}
        if namespace is not None:
            body["namespace"] = namespace
        created: dict[str, Any] = self._send("POST", "/keys", json=body).json()
        return created

    def keys(self) -> list[dict[str, Any]]:
        """The keys an admin key may see (never their secrets)."""
        found: list[dict[str, Any]] = self._send("GET", "/keys").json()["keys"]
        return found

    def revoke_key(self, key_id: str) -> None:
        self._send("DELETE", f"/keys/{quote(key_id, safe='')}")


def _code_files(path: Path, max_bytes: int) -> dict[str, tuple[str, bytes, str]]:
    """The ``code`` part of a deploy: ``path``'s folder as a bundle naming ``path``."""
    data = bundle_folder(Path(path), max_bytes)
    return {"code": (f"{Path(path).stem}.zip", data, BUNDLE_CONTENT_TYPE)}


def _error_of(response: httpx.Response) -> CoveError:
    try:
        body = response.json()
        return error_from_dict(body["error"])
    except (ValueError, KeyError, TypeError):
        return InternalError(f"HTTP {response.status_code}: {response.text[:500]}")


def decode_output(response: httpx.Response) -> Any:
    """An output response as Python: parsed JSON, or a :class:`File` for other types."""
    content_type = response.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        return json.loads(response.content)
    return File(response.content, content_type or "application/octet-stream")
