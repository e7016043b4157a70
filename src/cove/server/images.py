"""Routes: build the images of a Python file ahead of its deploy."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from cove.engine.deployments import inspect_code
from cove.server.applications import code_part, engine_of

router = APIRouter(tags=["images"])


@router.post("/images", summary="Build the images of a Python file")
async def build_images(request: Request) -> dict[str, Any]:
    """Multipart form with a ``code`` part. Builds every image its functions use (each once
    per content hash) without deploying; a failed build answers 400 with the log's tail."""
    manifest = await inspect_code(*await code_part(request, "an image build"))
    return {"images": await engine_of(request).build_images(manifest)}
