"""Routes: set, list and delete secrets. Values go in, never out."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from cove.engine.keys import DEFAULT_NAMESPACE
from cove.engine.secrets import SecretStore, validate_name
from cove.errors import InvalidInputError, NotFoundError
from cove.server import safejson
from cove.server.applications import engine_of
from cove.server.auth import principal

router = APIRouter(tags=["secrets"])


def secret_store(request: Request) -> SecretStore:
    """The caller's namespace's secrets, in the engine's database; for ``default``,
    ``app.state.secrets`` when something set it (the engine's own otherwise)."""
    namespace = principal(request).namespace
    store: SecretStore | None = getattr(request.app.state, "secrets", None)
    if namespace != DEFAULT_NAMESPACE or store is None:
        return engine_of(request).secrets_for(namespace)
    return store


@router.put("/secrets/{name}", status_code=204, summary="Set a secret")
async def set_secret(name: str, request: Request) -> Response:
    """JSON body ``{"value": "..."}``: creates or replaces the secret. Functions that list
    it (``@function(secrets=[...])``) get it as an environment variable."""
    validate_name(name)
    try:
        body = safejson.loads(await request.body())
    except ValueError:
        raise InvalidInputError(
            'setting a secret needs a JSON body {"value": "..."}', secret=name
        ) from None
    if not isinstance(body, dict) or "value" not in body:
        raise InvalidInputError('setting a secret needs a JSON body {"value": "..."}', secret=name)
    await run_in_threadpool(secret_store(request).set, name, body["value"])
    return Response(status_code=204)


@router.get("/secrets", summary="List secrets (names only)")
async def list_secrets(request: Request) -> dict[str, Any]:
    names = await run_in_threadpool(secret_store(request).names)
    return {"secrets": [{"name": n} for n in names]}


@router.delete("/secrets/{name}", status_code=204, summary="Delete a secret")
async def delete_secret(name: str, request: Request) -> Response:
    if not await run_in_threadpool(secret_store(request).delete, name):
        raise NotFoundError(f"no secret named {name!r}", secret=name)
    return Response(status_code=204)
