"""Routes: set, list and delete secrets. Values go in, never out."""

from __future__ import annotations

import threading
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

_store_lock = threading.Lock()


def secret_store(request: Request) -> SecretStore:
    """The caller's namespace's :class:`SecretStore`; for ``default``, ``app.state.secrets``,
    created over the engine's data folder on first use when nothing set it."""
    namespace = principal(request).namespace
    if namespace != DEFAULT_NAMESPACE:
        return engine_of(request).secrets_for(namespace)
    state = request.app.state
    store: SecretStore | None = getattr(state, "secrets", None)
    if store is None:
        with _store_lock:
            store = getattr(state, "secrets", None)
            if store is None:
                store = SecretStore(engine_of(request).settings.data_dir)
                state.secrets = store
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
