"""The guard in front of every route: API keys, roles, namespaces and hostile input.

One ASGI middleware, run before routing:

1. refuses requests with too many headers (431);
2. finds who is calling: with ``--auth`` off, the local user (an admin of ``default``);
   with it on, the API key in ``Authorization: Bearer KEY`` (401 without a valid one), or
   nobody for the few reads and invocations of applications that allow
   ``unauthenticated_requests``;
3. checks the key's role against the route (403);
4. puts the caller's namespace into the path: ``/applications/app`` of namespace ``ns`` is
   routed as ``/applications/ns~app``, so every route, and the engine under it, sees only
   that namespace's applications and their requests (another namespace's are simply not
   found: 404);
5. bounds the body: JSON bodies to ``max_json_bytes``, code uploads to ``max_code_bytes``
   (413), and a body that stalls for ``body_timeout`` seconds ends the request (408);
6. bounds the event streams (SSE) each key holds open (429).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cove.engine.keys import (
    DEFAULT_NAMESPACE,
    ROLES,
    SEPARATOR,
    KeyRing,
    qualify,
    validate_namespace,
    validate_role,
)
from cove.engine.settings import Settings
from cove.errors import (
    AuthenticationError,
    CoveError,
    ErrorCode,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
)
from cove.server import safejson
from cove.server.errors import error_response

OPEN_PATHS = frozenset({"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
MACHINE_PATHS = frozenset({"/status", "/metrics"})  # about every namespace: admins of default
# The dashboard in a browser: its key in an HttpOnly, SameSite=Strict cookie, honoured for
# GET and HEAD only (so a cross-site form cannot act with it); its sign-in page and static
# files are open.
COOKIE = "cove_key"
UI_OPEN = frozenset({"/ui/login", "/ui/logout"})
NAMESPACE_HEADER = "x-cove-namespace"  # which namespace an unauthenticated call means
UNAUTHENTICATED = "unauthenticated_requests"
TENSORLAKE_PREFIX = ["v1", "namespaces"]  # Tensorlake's API (cove.server.tensorlake_api)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a namespace, a role (None: no key) and the key's id."""

    namespace: str
    role: str | None
    key_id: str | None = None

    def allows(self, role: str) -> bool:
        return self.role is not None and ROLES.index(self.role) >= ROLES.index(role)


LOCAL = Principal(DEFAULT_NAMESPACE, "admin", None)


def principal(request: Request) -> Principal:
    """The caller of ``request`` (the guard set it; without the guard, the local admin)."""
    found: Principal | None = getattr(request.state, "principal", None)
    return found or LOCAL


def required_role(method: str, parts: list[str]) -> str:
    """The least role a route needs. ``parts``: the path's segments."""
    head = parts[0] if parts else ""
    if head in ("keys", "secrets"):
        return "admin"
    if head == "images" or (head == "applications" and method == "POST" and len(parts) == 1):
        return "deploy"
    if head == "applications" and method == "DELETE" and len(parts) == 2:
        return "deploy"
    return "invoke"


def _anonymous_route(method: str, parts: list[str]) -> bool:
    """Routes open to a request of an application that allows unauthenticated requests:
    invoking it, and reading a request whose (unguessable) id the caller holds."""
    if len(parts) < 2 or parts[0] != "applications":
        return False
    if len(parts) == 2:
        return method == "POST"
    tail = parts[2:]
    return method in ("GET", "HEAD") and (
        (len(tail) == 2 and tail[0] == "requests")
        or (len(tail) == 3 and tail[0] == "requests" and tail[2] in ("output", "progress"))
    )


def _is_stream(method: str, parts: list[str], scope: Scope, headers: dict[str, str]) -> bool:
    if "text/event-stream" in headers.get("accept", ""):
        return True
    if method != "GET" or len(parts) != 5 or parts[0] != "applications":
        return False
    query = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"))
    if parts[4] == "progress":
        return query.get("format", ["sse"])[-1] != "json"
    if parts[4] == "logs":
        return query.get("follow", ["false"])[-1].lower() in ("1", "true", "yes", "on")
    return False


class Guard:
    """The ASGI middleware described in the module docstring."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.streams: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self._guard(scope, receive, send)
        except CoveError as err:
            await error_response(err)(scope, receive, send)

    async def _guard(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        if len(raw_headers) > self.settings.max_headers:
            raise CoveError(
                f"too many headers: at most {self.settings.max_headers}",
                code=ErrorCode.HEADERS_TOO_LARGE,
            )
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw_headers}
        path: str = scope["path"]
        if path in OPEN_PATHS or path in UI_OPEN or path.startswith("/ui/static/"):
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        parts = [p for p in path.split("/") if p]
        prefix, path_namespace = "", None
        if len(parts) >= 3 and parts[:2] == TENSORLAKE_PREFIX:  # namespace in the path
            prefix, path_namespace = "/" + "/".join(parts[:3]), parts[2]
            parts = parts[3:]  # roles, limits and names as for Cove's routes
        try:
            who = await self._principal(scope, method, parts, headers, path_namespace)
        except AuthenticationError:
            if method == "GET" and parts[:1] == ["ui"]:  # a browser: to the sign-in page
                query = bytes(scope.get("query_string", b"")).decode("latin-1")
                target = quote(path + ("?" + query if query else ""), safe="")
                await RedirectResponse(f"/ui/login?next={target}", 303)(scope, receive, send)
                return
            raise
        if parts and parts[0] == "applications" and len(parts) >= 2:
            if SEPARATOR in parts[1]:  # an engine name: no client may name it directly
                raise NotFoundError(f"application {parts[1]!r} is not deployed")
            parts[1] = qualify(who.namespace, parts[1])
            new_path = prefix + "/" + "/".join(parts) + ("/" if path.endswith("/") else "")
            scope = {**scope, "path": new_path, "raw_path": quote(new_path).encode()}
        scope.setdefault("state", {})
        scope["state"]["principal"] = who
        receive = self._bounded(receive, method, parts, headers)
        if not _is_stream(method, parts, scope, headers):
            await self.app(scope, receive, send)
            return
        holder = who.key_id or ("local" if who.role else "anonymous")
        if self.streams[holder] >= self.settings.max_streams_per_key:
            raise CoveError(
                f"too many event streams open: at most {self.settings.max_streams_per_key} "
                "per API key; close one first",
                code=ErrorCode.TOO_MANY_REQUESTS,
            )
        self.streams[holder] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.streams[holder] -= 1

    async def _principal(
        self,
        scope: Scope,
        method: str,
        parts: list[str],
        headers: dict[str, str],
        path_namespace: str | None = None,
    ) -> Principal:
        """``path_namespace``: the namespace a Tensorlake route names (its key must be of
        it; without ``--auth`` the local user is an admin of every namespace)."""
        if path_namespace is not None:
            try:
                validate_namespace(path_namespace)
            except InvalidInputError as exc:
                raise NotFoundError(exc.message) from None
        if not self.settings.auth:
            if path_namespace is not None:
                return Principal(path_namespace, "admin", None)
            return LOCAL
        head = "/".join(parts)
        authorization = headers.get("authorization")
        if authorization is None and method in ("GET", "HEAD"):
            cookie = SimpleCookie(headers.get("cookie", "")).get(COOKIE)
            if cookie is not None and cookie.value:
                authorization = f"Bearer {cookie.value}"
        if authorization is None:
            return await self._anonymous(scope, method, parts, headers, path_namespace)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError(
                "the Authorization header must be 'Bearer KEY' with a Cove API key"
            )
        key = await keyring(scope).authenticate(token.strip())
        if key is None:
            raise AuthenticationError("the API key is not valid (unknown, malformed or revoked)")
        who = Principal(key.namespace, key.role, key.id)
        if path_namespace is not None and path_namespace != key.namespace:
            raise ForbiddenError(
                f"this API key is of namespace {key.namespace!r}, not {path_namespace!r}",
                namespace=key.namespace,
            )
        if "/" + head in MACHINE_PATHS and not (
            who.namespace == DEFAULT_NAMESPACE and who.allows("admin")
        ):
            raise ForbiddenError(f"/{head} is about the whole server: it needs an admin key")
        needed = required_role(method, parts)
        if not who.allows(needed):
            raise ForbiddenError(
                f"{method} /{head} needs a key with role {needed} (or above); "
                f"this key's role is {key.role}",
                role=key.role,
                required=needed,
            )
        return who

    async def _anonymous(
        self,
        scope: Scope,
        method: str,
        parts: list[str],
        headers: dict[str, str],
        path_namespace: str | None = None,
    ) -> Principal:
        missing = AuthenticationError(
            "this server needs an API key: send 'Authorization: Bearer KEY' "
            "(create keys with: cove keys create)"
        )
        if not _anonymous_route(method, parts):
            raise missing
        namespace = path_namespace or headers.get(NAMESPACE_HEADER, DEFAULT_NAMESPACE)
        try:
            validate_namespace(namespace)
        except InvalidInputError:
            raise missing from None
        if SEPARATOR in parts[1]:
            raise missing
        engine = scope["app"].state.engine
        try:
            manifest = engine.deployments.get(qualify(namespace, parts[1])).application
        except NotFoundError:
            raise missing from None  # whether it exists is not for anonymous callers to learn
        if UNAUTHENTICATED not in (manifest.get("allow") or []):
            raise missing
        return Principal(namespace, None, None)

    def _bounded(
        self, receive: Receive, method: str, parts: list[str], headers: dict[str, str]
    ) -> Receive:
        """``receive``, counting the body against its limit and timing out stalls."""
        if method in ("GET", "HEAD", "DELETE", "OPTIONS"):
            return receive
        content_type = headers.get("content-type", "").lower()
        limit: int | None = None
        if parts == ["applications"] or parts == ["images"]:
            limit = self.settings.max_code_bytes + 64 * 1024  # the code part and the form
        elif "json" in content_type or content_type.startswith("text/"):
            limit = self.settings.max_json_bytes
        # A body without a content type may be a raw file for an application's File
        # parameter: cove.server.inputs bounds it by max_json_bytes if it is read as JSON.
        length = headers.get("content-length", "")
        if limit is not None and length.isdigit() and int(length) > limit:
            raise PayloadTooLargeError(
                f"the request body is {int(length)} bytes: at most {limit} accepted here",
                limit=limit,
            )
        timeout = self.settings.body_timeout
        received = 0
        finished = False

        async def bounded() -> Message:
            nonlocal received, finished
            if finished:
                return await receive()
            try:
                async with asyncio.timeout(timeout):  # no task per chunk, unlike wait_for
                    message = await receive()
            except TimeoutError:
                raise CoveError(
                    f"the request body stalled: nothing arrived for {timeout:g} s",
                    code=ErrorCode.REQUEST_TIMEOUT,
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if limit is not None and received > limit:
                    raise PayloadTooLargeError(
                        f"the request body is larger than {limit} bytes, the most accepted here",
                        limit=limit,
                    )
                finished = not message.get("more_body", False)
            else:
                finished = True
            return message

        return bounded


def keyring(scope_or_request: Any) -> KeyRing:
    """The server's :class:`KeyRing` (``app.state.keys``, made over the engine's store)."""
    app = scope_or_request["app"] if isinstance(scope_or_request, dict) else scope_or_request.app
    ring: KeyRing | None = getattr(app.state, "keys", None)
    if ring is None:
        ring = app.state.keys = KeyRing(app.state.engine.store)
    return ring


# -- routes: keys ---------------------------------------------------------------------------
router = APIRouter(tags=["keys"])


@router.post("/keys", status_code=201, summary="Create an API key")
async def create_key(request: Request) -> dict[str, Any]:
    """JSON body ``{"role": "admin"|"deploy"|"invoke", "name": "...", "namespace": "..."}``.
    The key is in the answer, once: only its hash is stored. An admin creates keys of its
    own namespace (an admin of ``default`` of any namespace)."""
    who = principal(request)
    try:
        body = safejson.loads(await request.body())
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise InvalidInputError('creating a key needs a JSON body {"role": "..."}')
    role = validate_role(body.get("role"))
    namespace = validate_namespace(body.get("namespace", who.namespace))
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 200):
        raise InvalidInputError("a key's name must be a string of at most 200 characters")
    if namespace != who.namespace and who.namespace != DEFAULT_NAMESPACE:
        raise ForbiddenError(
            f"an admin of namespace {who.namespace!r} creates keys of that namespace only"
        )
    record, token = await keyring(request).create(namespace, role, name)
    return {**record.to_dict(), "key": token}


@router.get("/keys", summary="List API keys (never their secrets)")
async def list_keys(request: Request) -> dict[str, Any]:
    who = principal(request)
    scope = None if who.namespace == DEFAULT_NAMESPACE else who.namespace
    return {"keys": [k.to_dict() for k in await keyring(request).list(scope)]}


@router.delete("/keys/{key_id}", status_code=204, summary="Revoke an API key")
async def revoke_key(key_id: str, request: Request) -> None:
    who = principal(request)
    scope = None if who.namespace == DEFAULT_NAMESPACE else who.namespace
    await keyring(request).revoke(key_id, scope)
