"""The ASGI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cove import __version__
from cove.engine.engine import Engine
from cove.engine.settings import Settings
from cove.server import applications, errors, images, requests, secrets


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """Build the HTTP API over an engine (created from ``settings`` when not given)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        eng = engine or Engine(settings)
        app.state.engine = eng
        app.state.secrets = eng.secrets
        await eng.start()
        try:
            yield
        finally:
            await eng.stop()

    app = FastAPI(
        title="Cove",
        version=__version__,
        description="Durable, autoscaled Python applications.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.include_router(applications.router)
    app.include_router(images.router)
    app.include_router(requests.router)
    app.include_router(secrets.router)

    @app.get("/healthz", tags=["health"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
