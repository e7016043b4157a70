"""Tensorlake's HTTP API, served by Cove: the unchanged ``tensorlake`` SDK talks to Cove.

Routes under ``/v1/namespaces/{ns}/applications``, as the SDK's ``run_remote_application``
and ``APIClient`` call them (the contract: ``docs/tensorlake.md``, "Point the Tensorlake
SDK at Cove"). They share everything with Cove's own routes: the engine, API keys
(``Authorization: Bearer KEY``), roles and namespaces (``{ns}`` is a Cove namespace; the
guard in :mod:`cove.server.auth` checks that the key is of it and qualifies the
application's name as for Cove's routes). A request invoked here is the same request
through ``/applications/{app}/requests/{id}``: same id, status and output.

Translations:

* the application manifest is Tensorlake's, built from Cove's; its pickled type hints
  were made at deploy time by the inspection subprocess (:mod:`cove.sdk.tensorlake_hints`);
* arguments come as the SDK sends them: no body, one raw body (positional argument 0),
  or ``multipart/form-data`` with parts named ``0``, ``1``, … (positional) or by keyword;
* Cove's statuses and failure reasons become Tensorlake's ``outcome`` and
  ``request_error``; Cove's progress events become Tensorlake's (``RequestStarted``,
  ``FunctionRunCreated``, ``FunctionRunCompleted``, ``RequestProgressUpdated``,
  ``RequestFinished``);
* errors answer with their message as plain text, which the SDK shows in
  ``RemoteAPIError`` (``"<message> (Status Code: 404)"``);
* a deploy (``POST .../applications``, the SDK's multipart upload: ``code``, a ZIP of the
  application's folder with ``.tensorlake_code_manifest.json``; ``application``, the
  Tensorlake manifest) is a Cove deploy of that folder with the application's module as
  its entry, making a new version of that application only; the uploaded manifest is kept
  with the version and is what ``GET .../{app}`` answers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import math
import zipfile
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from cove.blobs.base import BlobStore
from cove.engine.deployments import Version
from cove.engine.events import Entry
from cove.engine.keys import SEPARATOR, namespace_of, public_name, qualify
from cove.errors import (
    ConflictError,
    CoveError,
    ErrorCode,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
)
from cove.sdk import bundle
from cove.sdk.http import public_headers
from cove.sdk.tensorlake_hints import fallback_hints
from cove.server import auth, observe
from cove.server.applications import base_url, engine_of
from cove.server.errors import status_and_headers
from cove.server.files import output_response
from cove.server.inputs import (
    Upload,
    _batches,
    _from_multipart,
    _parse_json,
    _raw_file,
    _validate,
    fingerprint,
)
from cove.server.requests import _outcome  # memory first, then the journal, as /output
from cove.server.secrets import secret_store
from cove.server.views import application as application_view
from cove.server.views import iso
from cove.store import journal as j

PREFIX = "/v1/namespaces/{ns}"
KEEPALIVE_SECONDS = 1.0  # as Indexify: the SDK's newer SSE reader has an idle timeout
#: Cove's failure reasons that Tensorlake also has; any other becomes ``internal_error``.
TENSORLAKE_REASONS = frozenset(
    {
        "function_error",
        "function_timeout",
        "request_error",
        "constraint_unsatisfiable",
        "cancelled",
        "out_of_memory",
        "internal_error",
    }
)


class _TextErrors(APIRoute):
    """Errors answered as plain text: the SDK puts the body into ``RemoteAPIError``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except CoveError as err:
                return text_error(err)

        return route


def text_error(err: CoveError) -> Response:
    status, headers = status_and_headers(err)  # a 503 with Retry-After, as on Cove's routes
    return PlainTextResponse(err.message, status_code=status, headers=headers)


router = APIRouter(prefix=PREFIX, tags=["tensorlake"], route_class=_TextErrors)


# -- applications ---------------------------------------------------------------------------
def _version(request: Request, app: str) -> Version:
    try:
        return engine_of(request).deployments.get(app)
    except NotFoundError:
        raise NotFoundError(
            f"application {public_name(app)!r} not found", code=ErrorCode.APPLICATION_NOT_FOUND
        ) from None


def _hints(app: dict[str, Any]) -> dict[str, str]:
    stored: dict[str, str] | None = app.get("tensorlake")
    return stored if stored else fallback_hints(app)  # deployed before Cove recorded them


def _gpus(gpu: str | list[str] | None) -> list[dict[str, Any]]:
    gpus = []
    for spec in [gpu] if isinstance(gpu, str) else gpu or []:
        model, _, count = spec.partition(":")
        gpus.append({"count": int(count) if count.isdigit() else 1, "model": model})
    return gpus


def _function(fn: dict[str, Any], app: dict[str, Any], entry: bool) -> dict[str, Any]:
    retries = fn.get("retries") or app.get("retries") or {}
    region = fn.get("region") or app.get("region")
    timeout = math.ceil(fn.get("timeout") or 300)
    data: dict[str, Any] = {
        "name": fn["name"],
        "description": fn.get("description") or "",
        "secret_names": list(fn.get("secrets") or []),
        "initialization_timeout_sec": math.ceil(fn.get("init_timeout") or timeout),
        "timeout_sec": timeout,
        "resources": {
            "cpus": float(fn.get("cpu") or 1.0),
            "memory_mb": math.ceil((fn.get("memory") or 1.0) * 1024),
            "ephemeral_disk_mb": math.ceil((fn.get("ephemeral_disk") or 2.0) * 1024),
            "gpus": _gpus(fn.get("gpu")),
        },
        "retry_policy": {
            "max_retries": int(retries.get("max_retries", 0)),
            "initial_delay_sec": float(retries.get("initial_delay", 1.0)),
            "max_delay_sec": float(retries.get("max_delay", 60.0)),
            "delay_multiplier": float(retries.get("delay_multiplier", 2.0)),
        },
        "cache_key": None,
        "parameters": [],
        "return_type": None,
        "placement_constraints": {"filter_expressions": [f"region=={region}"] if region else []},
        "max_concurrency": int(fn.get("max_concurrency") or 1),
        "warm_containers": fn.get("warm_containers"),
        "min_containers": fn.get("min_containers"),
        "max_containers": fn.get("max_containers"),
    }
    if entry:
        data["parameters"] = [
            {
                "name": p["name"],
                "data_type": {"title": p["name"], **p["schema"]},
                "description": p["schema"].get("description"),
                "required": p["required"],
            }
            for p in app["parameters"]
        ]
        data["return_type"] = app["return_schema"] or None
    return data


#: The key of a version's stored manifest that holds the Tensorlake manifests uploaded
#: by the SDK's deployer, by application name.
UPLOADED = "tensorlake_manifests"


def uploaded_manifest(version: Version) -> dict[str, Any] | None:
    """The Tensorlake manifest the SDK uploaded for this version (None: deployed by Cove)."""
    found: dict[str, Any] | None = (version.manifest.get(UPLOADED) or {}).get(
        public_name(version.app)
    )
    return found


def manifest(version: Version) -> dict[str, Any]:
    """The Tensorlake application manifest of a Cove version: the one the SDK uploaded,
    unchanged, else one built from Cove's."""
    uploaded = uploaded_manifest(version)
    if uploaded is not None:
        return uploaded
    app = version.application
    hints = _hints(app)
    return {
        "name": public_name(version.app),
        "description": app.get("description") or "",
        "tags": dict(app.get("tags") or {}),
        "allow": list(app.get("allow") or []),
        "version": str(version.version),
        "runtime": "python",
        "functions": {
            f["name"]: _function(f, app, f["name"] == app["function"])
            for f in version.manifest["functions"]
        },
        "entrypoint": {
            "function_name": app["function"],
            "input_serializer": "json",
            "inputs_base64": hints["inputs_base64"],
            "output_serializer": "json",
            "output_type_hints_base64": hints["output_type_hints_base64"],
        },
        "created_at": int(version.created_at * 1000),
        "tombstoned": False,
    }


def _cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode()


def _uncursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInputError(f"cursor {cursor!r} is not one this server handed out") from None


@router.get("/applications", summary="Tensorlake: list applications")
async def list_applications(
    request: Request, limit: int = Query(100, ge=1, le=1000), cursor: str | None = Query(None)
) -> dict[str, Any]:
    namespace = auth.principal(request).namespace
    versions = sorted(
        (v for v in engine_of(request).deployments.apps() if namespace_of(v.app) == namespace),
        key=lambda v: public_name(v.app),
    )
    if cursor:
        after = _uncursor(cursor)
        versions = [v for v in versions if public_name(v.app) > after]
    page = versions[:limit]
    more = len(versions) > limit
    return {
        "applications": [manifest(v) for v in page],
        "cursor": _cursor(public_name(page[-1].app)) if more and page else None,
    }


# -- deploying ------------------------------------------------------------------------------
#: The code manifest in the SDK's ZIP: ``{"functions": {name: {"module_import_name"}}}``.
CODE_MANIFEST = ".tensorlake_code_manifest.json"
_CODE_MANIFEST_LIMIT = 1024 * 1024


def _text_field(form: Any, name: str) -> str | None:
    value = form.get(name)
    if value is None or isinstance(value, str):
        return value
    raise InvalidInputError(f"the deploy form field {name!r} must be text, not a file")


def _uploaded(text: str | None) -> dict[str, Any]:
    """The ``application`` part: the Tensorlake manifest, checked as Indexify checks it."""
    if text is None:
        raise InvalidInputError("a deploy needs the form field 'application': its manifest JSON")
    try:
        uploaded = json.loads(text)
    except ValueError as exc:
        raise InvalidInputError(f"the application manifest is not valid JSON: {exc}") from None
    if not isinstance(uploaded, dict):
        raise InvalidInputError("the application manifest must be a JSON object")
    name = uploaded.get("name")
    if not isinstance(name, str) or not name or SEPARATOR in name:
        raise InvalidInputError("the application manifest needs a 'name': the application's")
    functions = uploaded.get("functions")
    entrypoint = uploaded.get("entrypoint")
    if not isinstance(functions, dict) or not isinstance(entrypoint, dict):
        raise InvalidInputError(
            f"the manifest of application {name!r} needs 'functions' and 'entrypoint' objects"
        )
    entry = entrypoint.get("function_name")
    if not isinstance(entry, str) or entry not in functions:
        raise InvalidInputError(
            f"the entrypoint function {entry!r} of application {name!r} is not one of its "
            f"functions ({', '.join(sorted(map(str, functions))) or 'none'})"
        )
    return uploaded


def entry_file(code: bytes, function: str) -> str | None:
    """The file of the module that defines ``function``, from the ZIP's code manifest
    (None: the ZIP has none; :func:`cove.sdk.bundle.read_bundle` then takes its only
    top-level ``.py`` file)."""
    try:
        with zipfile.ZipFile(io.BytesIO(code)) as archive:
            try:
                info = archive.getinfo(CODE_MANIFEST)
            except KeyError:
                return None
            if info.file_size > _CODE_MANIFEST_LIMIT:
                raise InvalidInputError(f"the code's {CODE_MANIFEST} is too large")
            described = json.loads(archive.read(info))
    except (zipfile.BadZipFile, ValueError, OSError, NotImplementedError) as exc:
        raise InvalidInputError(f"the code's {CODE_MANIFEST} cannot be read: {exc}") from None
    try:
        module = described["functions"][function]["module_import_name"]
    except (KeyError, TypeError):
        raise InvalidInputError(
            f"the code's {CODE_MANIFEST} does not say which module defines {function!r}"
        ) from None
    if not isinstance(module, str) or not all(p.isidentifier() for p in module.split(".")):
        raise InvalidInputError(f"{CODE_MANIFEST}: {module!r} is not a module name")
    if "." in module:
        raise InvalidInputError(
            f"application function {function!r} is defined in module {module!r}: Cove deploys "
            "an application from a module at the top of its folder (deploy from the "
            "package's folder, or define the application in a top-level module)"
        )
    return f"{module}.py"


def _deploy_lock(request: Request, app: str) -> asyncio.Lock:
    """One deploy of an application at a time: the SDK's retry of a POST waits for the
    first and then finds it done."""
    locks: dict[str, asyncio.Lock] | None = getattr(request.app.state, "tensorlake_deploys", None)
    if locks is None:
        locks = request.app.state.tensorlake_deploys = {}
    return locks.setdefault(app, asyncio.Lock())


@router.post("/applications", summary="Tensorlake: deploy an application (the SDK's upload)")
async def deploy(ns: str, request: Request) -> Response:
    """The SDK's multipart deploy, one POST per application: ``code`` (a ZIP of the
    application's folder, ``.tensorlake_code_manifest.json`` naming each function's
    module), ``code_content_type`` (``application/zip``), ``application`` (the Tensorlake
    manifest) and ``upgrade_requests_to_latest_code``.

    A Cove deploy of the folder with the application's module as its entry: a new version
    of that application only (the file's other applications come with their own POSTs),
    storing the uploaded manifest, which ``GET .../{app}`` then answers unchanged. The
    same code and manifest again (the SDK retries POSTs) is the version already deployed:
    200 and nothing new. Another code or manifest under the same Tensorlake ``version``:
    409, as Tensorlake keeps versions immutable."""
    engine = engine_of(request)
    try:
        form = await request.form()
    except Exception as exc:
        raise InvalidInputError(f"a deploy needs a multipart/form-data body: {exc}") from None
    code_part = form.get("code")
    if not isinstance(code_part, UploadFile):
        raise InvalidInputError("a deploy needs a 'code' file part: a ZIP of the code")
    content_type = _text_field(form, "code_content_type")
    if content_type is not None and content_type.strip().lower() not in bundle.ZIP_CONTENT_TYPES:
        raise InvalidInputError(
            f"code_content_type {content_type[:100]!r} is not supported: the code must be "
            f"{bundle.CONTENT_TYPE}"
        )
    upgrade = (_text_field(form, "upgrade_requests_to_latest_code") or "false").strip().lower()
    if upgrade not in ("true", "false"):
        raise InvalidInputError(
            f"upgrade_requests_to_latest_code must be true or false, not {upgrade[:100]!r}"
        )
    uploaded = _uploaded(_text_field(form, "application"))
    name: str = uploaded["name"]
    data = await code_part.read()
    limit = engine.settings.max_code_bytes
    if not bundle.is_zip(data):
        raise InvalidInputError(f"the code of application {name!r} is not a ZIP archive")
    if len(data) > limit:
        raise PayloadTooLargeError(
            f"the code is {len(data)} bytes: at most {limit} accepted", limit=limit
        )
    loop = asyncio.get_running_loop()
    entry = await loop.run_in_executor(
        None, entry_file, data, uploaded["entrypoint"]["function_name"]
    )
    filename, code = await loop.run_in_executor(None, bundle.read_bundle, data, entry, limit)
    namespace = auth.principal(request).namespace
    app = qualify(namespace, name)
    async with _deploy_lock(request, app):
        versions = _same_deploy(request, app, code, uploaded)
        created = not versions
        if created:
            versions = await engine.deploy(
                filename, code, namespace, only=name, extra={UPLOADED: {name: uploaded}}
            )
    body = {
        "applications": [application_view(v, base_url(request)) for v in versions],
        "created": created,
    }
    return JSONResponse(body, status_code=200)


def _same_deploy(
    request: Request, app: str, code: bytes, uploaded: dict[str, Any]
) -> list[Version]:
    """The latest version, when it is this very upload ([]: deploy it)."""
    try:
        latest = engine_of(request).deployments.get(app)
    except NotFoundError:
        return []
    before = uploaded_manifest(latest)
    if before is None:
        return []  # deployed by Cove: a Tensorlake deploy makes a version of its own
    same_code = latest.code_blob == BlobStore.key_of(code)
    if same_code and before == uploaded:
        return [latest]
    if before.get("version") is not None and before.get("version") == uploaded.get("version"):
        raise ConflictError(
            f"version {uploaded['version']!r} of application {uploaded['name']!r} is "
            "already deployed with other "
            + ("settings" if same_code else "code")
            + ": a version never changes; deploy under a new version"
        )
    return []


@router.get("/applications/{app}", summary="Tensorlake: an application's manifest")
async def get_application(ns: str, app: str, request: Request) -> dict[str, Any]:
    return manifest(_version(request, app))


@router.delete("/applications/{app}", summary="Tensorlake: delete an application")
async def delete_application(ns: str, app: str, request: Request) -> Response:
    """As Cove's ``DELETE /applications/{app}``: its running requests are cancelled and it
    is removed with its history."""
    _version(request, app)
    cleaner = request.app.state.cleaner
    await cleaner.forget_app(app)
    await engine_of(request).delete_application(app)
    cleaner.run_soon()
    return Response(status_code=200)


# -- invoking -------------------------------------------------------------------------------
async def read_arguments(request: Request, app: dict[str, Any], upload: Upload) -> dict[str, Any]:
    """The arguments of an invocation as the SDK encodes them, by parameter name.

    No body: no arguments. ``multipart/form-data``: parts named by position (``0``, ``1``,
    …) or by keyword (a keyword wins over the same parameter's position); parts of unknown
    names and positions past the last parameter are ignored, as by Tensorlake. Any other
    body: positional argument 0 (raw bytes for a ``File``, else JSON)."""
    name = app["name"]
    plist: list[dict[str, Any]] = app["parameters"]
    params = {p["name"]: p for p in plist}
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        by_part = {**{str(i): p for i, p in enumerate(plist)}, **params}
        parts = await _from_multipart(name, request, content_type, by_part, upload)
        values = {by_part[k]["name"]: v for k, v in parts.items() if k.isdigit()}
        values.update({k: v for k, v in parts.items() if not k.isdigit()})
    elif plist and plist[0]["is_file"]:
        values = await _raw_file(request, plist[0]["name"], content_type, upload)
    else:
        limits = [n for n in (upload.limit, upload.json_limit) if n is not None]
        body = b"".join([b async for b in _batches(request, min(limits, default=None))])
        values = {}
        if body.strip() and plist:
            values = {plist[0]["name"]: _parse_json(name, body, "the request body")}
    _validate(name, plist, values)
    return values


@router.post("/applications/{app}", summary="Tensorlake: invoke an application")
async def invoke(ns: str, app: str, request: Request) -> Response:
    """Answers ``{"request_id"}``; with ``Accept: text/event-stream``, the request's
    progress events instead (as ``.../progress``)."""
    version = _version(request, app)
    engine = engine_of(request)
    settings = engine.settings
    upload = Upload(engine.blobs, settings.max_upload_bytes, settings.max_json_bytes)
    values = await read_arguments(request, version.application, upload)
    key = request.headers.get("idempotency-key")
    request_id, _created = await engine.invoke(
        app,
        values,
        key,
        fingerprint(values) if key is not None else None,  # only a key needs it
        headers=public_headers(request.headers.items()),  # RequestContext.headers
    )
    if observe.wants_event_stream(request):
        return await _progress(request, app, request_id)
    return JSONResponse({"request_id": request_id}, headers={"X-Cove-Request-Id": request_id})


# -- requests -------------------------------------------------------------------------------
async def _row(request: Request, app: str, request_id: str) -> dict[str, Any]:
    _version(request, app)
    row = await engine_of(request).store.read(lambda c: j.get_request(c, request_id))
    if row is None or row["app"] != app:
        raise NotFoundError(
            f"request {request_id!r} of application {public_name(app)!r} not found",
            code=ErrorCode.REQUEST_NOT_FOUND,
        )
    return row


def outcome(status: str, error: dict[str, Any] | None) -> Any:
    """Tensorlake's ``outcome`` of a Cove request status and failure record."""
    if status == "succeeded":
        return "success"
    if status == "cancelled":
        return {"failure": "cancelled"}
    if status == "failed":
        reason = (error or {}).get("reason") or "internal_error"
        return {"failure": reason if reason in TENSORLAKE_REASONS else "internal_error"}
    return None


def request_error(status: str, error: dict[str, Any] | None) -> dict[str, Any] | None:
    """``request_error`` when user code raised ``RequestError``."""
    if status != "failed" or not error or error.get("reason") != "request_error":
        return None
    return {"function_name": error.get("function_name") or "", "message": error.get("message")}


def _run_status(status: str) -> tuple[str, str]:
    if status in ("pending", "running"):
        return status, "undefined"
    return "completed", "success" if status == "succeeded" else "failure"


def request_view(row: dict[str, Any], calls: list[dict[str, Any]]) -> dict[str, Any]:
    error = json.loads(row["error"]) if row["error"] else None
    status = row["status"]
    runs = []
    for c in calls:
        run_status, run_outcome = _run_status(c["status"])
        runs.append(
            {
                "id": c["call_id"],
                "name": c["function"],
                "status": run_status,
                "outcome": run_outcome,
                "created_at": int(c["created_at"] * 1000),
            }
        )
    failure = outcome(status, error)
    return {
        "id": row["id"],
        "application_version": str(row["version"]),
        "created_at": int(row["created_at"] * 1000),
        "outcome": failure,
        "failure_reason": failure["failure"] if isinstance(failure, dict) else None,
        "request_error": request_error(status, error),
        "function_runs": runs,
        "status": status,  # Cove's own, for clients that want it
    }


@router.get("/applications/{app}/requests", summary="Tensorlake: list requests")
async def list_requests(
    ns: str,
    app: str,
    request: Request,
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None),
) -> dict[str, Any]:
    """Newest first; ``next_cursor`` pages on."""
    _version(request, app)
    before = None
    if cursor:
        try:
            created, rid = json.loads(_uncursor(cursor))
            before = (float(created), str(rid))
        except (ValueError, TypeError):
            raise InvalidInputError(
                f"cursor {cursor!r} is not one this server handed out"
            ) from None
    store = engine_of(request).store
    rows = await store.read(lambda c: j.list_requests(c, app, limit + 1, before))
    page, more = rows[:limit], len(rows) > limit
    last = page[-1] if page else None
    return {
        "requests": [request_view(r, []) for r in page],
        "prev_cursor": None,
        "next_cursor": (
            _cursor(json.dumps([last["created_at"], last["id"]])) if more and last else None
        ),
    }


@router.get("/applications/{app}/requests/{request_id}", summary="Tensorlake: a request")
async def get_request(ns: str, app: str, request_id: str, request: Request) -> dict[str, Any]:
    row = await _row(request, app, request_id)
    calls = await engine_of(request).store.read(lambda c: j.calls_of(c, request_id))
    return request_view(row, calls)


@router.delete("/applications/{app}/requests/{request_id}", summary="Tensorlake: cancel a request")
async def cancel_request(ns: str, app: str, request_id: str, request: Request) -> Response:
    row = await _row(request, app, request_id)
    if not await engine_of(request).cancel(request_id):
        raise ConflictError(f"request {request_id} already {row['status']}: nothing to cancel")
    return Response(status_code=200)


@router.get(
    "/applications/{app}/requests/{request_id}/output", summary="Tensorlake: a request's output"
)
async def get_output(ns: str, app: str, request_id: str, request: Request) -> Response:
    """The output as the application returned it: JSON, or a ``File``'s bytes with its
    content type. No output (yet): 204, as Indexify."""
    await _row(request, app, request_id)
    found = await _outcome(request, app, request_id)
    headers = {"X-Cove-Request-Id": request_id}
    if found.status != "succeeded" or found.output is None:
        return Response(status_code=204, headers=headers)
    content_type = found.content_type or "application/json"
    return await output_response(
        request, engine_of(request).blobs, found.output, content_type, headers
    )


@router.get(
    "/applications/{app}/requests/{request_id}/progress",
    summary="Tensorlake: a request's progress (Server-Sent Events)",
)
async def progress(ns: str, app: str, request_id: str, request: Request) -> Response:
    """Tensorlake's events, replayed from the start (or after ``Last-Event-ID``) and live
    until ``RequestFinished``, which comes at once for a finished request; a keep-alive
    comment every second."""
    return await _progress(request, app, request_id)


async def _progress(request: Request, app: str, request_id: str) -> Response:
    row = await _row(request, app, request_id)
    events = engine_of(request).events
    start = observe.resume_point(request, None)
    context = {
        "namespace": namespace_of(app),
        "application_name": public_name(app),
        "application_version": str(row["version"]),
        "request_id": request_id,
    }
    entries = events.follow(request_id, start, keepalive=KEEPALIVE_SECONDS)

    async def body() -> AsyncIterator[bytes]:
        async for entry in entries:
            if entry is None:
                yield b": keep-alive\n\n"
                continue
            event = tensorlake_event(entry, context, row)
            if event is not None:
                data = json.dumps(event, separators=(",", ":"))
                yield f"id: {entry.seq}\ndata: {data}\n\n".encode()

    headers = {
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
        "X-Cove-Request-Id": request_id,
    }
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


def tensorlake_event(
    entry: Entry, context: dict[str, Any], row: dict[str, Any]
) -> dict[str, Any] | None:
    """One of Cove's progress events as Tensorlake's (None: Tensorlake has no such event)."""
    data, at = entry.data, iso(entry.at)
    if entry.kind == "request_started":
        return {"RequestStarted": {**context, "created_at": at}}
    run = {**context, "function_name": data.get("function"), "function_run_id": data.get("call_id")}
    if entry.kind == "call_started":
        if data.get("retry"):
            return None  # the same function run, another allocation
        return {"FunctionRunCreated": {**run, "created_at": at}}
    if entry.kind == "call_finished":
        done = data.get("status") in ("succeeded", "tail_call")
        return {
            "FunctionRunCompleted": {
                **run,
                "outcome": "success" if done else "failure",
                "created_at": at,
            }
        }
    if entry.kind == "progress":
        return {
            "RequestProgressUpdated": {
                **run,
                "message": data.get("message"),
                "step": data.get("current"),
                "total": data.get("total"),
                "attributes": {},
                "created_at": at,
            }
        }
    if entry.kind == "request_finished":
        status = data.get("status", "failed")
        error = data.get("error")
        output = None
        if status == "succeeded":
            path = (
                f"/v1/namespaces/{context['namespace']}/applications/"
                f"{context['application_name']}/requests/{context['request_id']}/output"
            )
            output = {"path": path, "content_encoding": data.get("content_type")}
        return {
            "RequestFinished": {
                **context,
                "outcome": outcome(status, error),
                "request_error": request_error(status, error),
                "created_at": iso(row["created_at"]),
                "output": output,
            }
        }
    return None


# -- secrets --------------------------------------------------------------------------------
@router.get("/secrets", summary="Tensorlake: list secrets (names only)")
async def list_secrets(ns: str, request: Request) -> dict[str, Any]:
    """The namespace's secret names, as Tensorlake's deployer reads them (it only warns
    about the ones its functions list and the server lacks)."""
    names = await run_in_threadpool(secret_store(request).names)
    items = [{"name": n} for n in names]
    return {"items": items, "secrets": items}
