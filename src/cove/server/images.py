"""Routes: build the images of a Python file ahead of its deploy; list the images built."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from cove.engine.deployments import inspect_code
from cove.engine.keys import DEFAULT_NAMESPACE
from cove.errors import ForbiddenError
from cove.server.applications import code_part, engine_of
from cove.server.auth import principal

router = APIRouter(tags=["images"])


@router.post("/images", summary="Build the images of a Python file")
async def build_images(request: Request) -> dict[str, Any]:
    """Multipart form with a ``code`` part. Builds every image its functions use (each once
    per content hash) without deploying; a failed build answers 400 with the log's tail."""
    manifest = await inspect_code(*await code_part(request, "an image build"))
    return {"images": await engine_of(request).build_images(manifest)}


@router.get("/images", summary="List the images built")
async def list_images(request: Request) -> dict[str, Any]:
    """Every image built by a server over this database (the latest build of each), newest
    first: ``hash``, ``name``, ``status`` (``ready`` or ``failed``), ``built_at`` and the end
    of the build ``log``; the same on every replica. Images serve every namespace, so this
    needs an admin key of ``default``."""
    who = principal(request)
    if who.namespace != DEFAULT_NAMESPACE or not who.allows("admin"):
        raise ForbiddenError("GET /images is about the whole server: it needs an admin key")
    return {"images": await engine_of(request).images.records()}
