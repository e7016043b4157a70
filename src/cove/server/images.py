"""Routes: build the images of a Python file ahead of its deploy."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile

from cove.engine.deployments import inspect_code
from cove.errors import InvalidInputError
from cove.server.applications import engine_of

router = APIRouter(tags=["images"])


@router.post("/images", summary="Build the images of a Python file")
async def build_images(request: Request) -> dict[str, Any]:
    """Multipart form with a ``code`` part. Builds every image its functions use (each once
    per content hash) without deploying; a failed build answers 400 with the log's tail."""
    try:
        form = await request.form()
    except Exception as exc:
        raise InvalidInputError(f"image builds need a multipart/form-data body: {exc}") from None
    code = form.get("code")
    if not isinstance(code, UploadFile) or not code.filename:
        raise InvalidInputError("image builds need a 'code' file part holding the Python file")
    manifest = await inspect_code(code.filename, await code.read())
    return {"images": await engine_of(request).build_images(manifest)}
