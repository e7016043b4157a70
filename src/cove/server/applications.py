"""Routes: deploy, list, describe and delete applications."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.datastructures import UploadFile

from cove.engine.deployments import Version
from cove.engine.engine import Engine
from cove.engine.keys import namespace_of
from cove.errors import InvalidInputError, PayloadTooLargeError
from cove.sdk import bundle
from cove.server import auth, views

router = APIRouter(tags=["applications"])


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def code_part(request: Request, what: str) -> tuple[str, bytes]:
    """The code of a multipart body: its entry file's name and the code blob's bytes.

    The ``code`` part is one Python file (its name a bare module file name), or a bundle:
    a ZIP (content type ``application/zip``, or by its magic bytes) of the file's folder,
    whose entry is the form field ``entry``, else the one its ``.cove_bundle.json`` names,
    else its only top-level ``.py`` file. A bundle is checked (entry names, size) and
    re-packed deterministically (:func:`cove.sdk.bundle.read_bundle`).
    """
    try:
        form = await request.form()
    except Exception as exc:
        raise InvalidInputError(f"{what} needs a multipart/form-data body: {exc}") from None
    code = form.get("code")
    if not isinstance(code, UploadFile) or not code.filename:
        raise InvalidInputError(
            f"{what} needs a 'code' file part holding the Python file or a ZIP of its folder"
        )
    data = await code.read()
    limit = engine_of(request).settings.max_code_bytes
    content_type = (code.content_type or "").split(";")[0].strip().lower()
    if content_type in bundle.ZIP_CONTENT_TYPES or bundle.is_zip(data):
        entry = form.get("entry")
        if entry is not None and not isinstance(entry, str):
            raise InvalidInputError("the form field 'entry' must be text: a .py file name")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, bundle.read_bundle, data, entry or None, limit)
    if len(data) > limit:
        raise PayloadTooLargeError(
            f"code file {code.filename!r} is {len(data)} bytes: at most {limit} accepted",
            limit=limit,
        )
    return code.filename, data


@router.post("/applications", status_code=201, summary="Deploy a Python file or its folder")
async def deploy(request: Request) -> dict[str, Any]:
    """Multipart form with a ``code`` part: the Python file to deploy, or a ZIP bundle of
    its folder (see :func:`code_part`). Each application in it gets a new version."""
    filename, code = await code_part(request, "deploy")
    namespace = auth.principal(request).namespace
    versions = await engine_of(request).deploy(filename, code, namespace)
    return {"applications": [views.application(v, base_url(request)) for v in versions]}


@router.get("/applications", summary="List applications")
async def list_applications(request: Request) -> dict[str, Any]:
    engine = engine_of(request)
    namespace = auth.principal(request).namespace
    return {
        "applications": [
            views.application(v, base_url(request))
            for v in engine.deployments.apps()
            if namespace_of(v.app) == namespace
        ]
    }


@router.get("/applications/{app}", summary="Describe an application")
async def get_application(app: str, request: Request) -> dict[str, Any]:
    engine = engine_of(request)
    data = views.application(engine.deployments.get(app), base_url(request))
    data["versions"] = sorted(v for a, v in engine.deployments.versions if a == app)
    return data


@router.get("/applications/{app}/functions", summary="Functions, pools and containers")
async def functions(app: str, request: Request) -> dict[str, Any]:
    """Per function of the latest version (and of older versions still running): its
    containers and their states, calls in flight and queued, cold starts, and bounds."""
    engine = engine_of(request)
    latest = engine.deployments.get(app)
    shown: set[int] = set()
    rows = []
    for name in latest.functions:
        pool = engine.pools.get((app, latest.version, name))
        rows.append(pool.describe() if pool is not None else _idle(latest, name))
        if pool is not None:
            shown.add(id(pool))
    for (owner, _version, _name), pool in sorted(engine.pools.items(), key=lambda kv: kv[0]):
        if owner == app and id(pool) not in shown:  # older versions still holding containers
            shown.add(id(pool))
            rows.append(pool.describe())
    return {
        "application": app,
        "version": latest.version,
        "functions": rows,
        "capacity": engine.capacity.describe(),
    }


def _idle(version: Version, name: str) -> dict[str, Any]:
    fn = version.functions[name]
    return {
        "function": name,
        "version": version.version,
        "containers": [],
        "in_flight": 0,
        "queued": 0,
        "cold_starts": 0,
        "cold_start_seconds": {"count": 0, "last": None, "p50": None, "p99": None, "max": None},
        "min_containers": fn.get("min_containers") or 0,
        "max_containers": fn.get("max_containers"),
        "warm_containers": fn.get("warm_containers") or 0,
        "max_concurrency": fn.get("max_concurrency") or 1,
        "retired": False,
    }


@router.delete("/applications/{app}", status_code=204, summary="Delete an application")
async def delete_application(app: str, request: Request) -> Response:
    """Cancels the application's running requests and removes it with its history."""
    cleaner = request.app.state.cleaner
    await cleaner.forget_app(app)  # its blobs go in the next cleanup pass, started now
    await engine_of(request).delete_application(app)
    cleaner.run_soon()
    return Response(status_code=204)
