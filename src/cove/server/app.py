"""The ASGI application factory."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from cove import __version__
from cove.blobs.cleanup import Cleaner
from cove.engine.engine import Engine
from cove.engine.keys import KeyRing
from cove.engine.settings import Settings
from cove.server import (
    applications,
    auth,
    errors,
    fastpath,
    health,
    images,
    observe,
    prometheus,
    request_records,
    requests,
    secrets,
    tensorlake_api,
    ui,
)
from cove.telemetry import tracing_from_env


class CoveAPI(FastAPI):
    """FastAPI, with the per-call routes answered on a shorter path (cove.server.fastpath)."""

    fast_path: fastpath.FastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast_path
        if fast is not None and scope["type"] == "http" and fast.takes(scope):
            scope["app"] = self
            await fast(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """Build the HTTP API over an engine (created from ``settings`` when not given)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        eng = engine or Engine(settings)
        app.state.engine = eng
        app.state.secrets = eng.secrets
        app.state.keys = KeyRing(eng.store)  # API keys (cove.server.auth)
        app.state.prometheus = prometheus.EngineMetrics(eng)
        traces = tracing_from_env(eng.events, os.environ)  # OTLP export when configured
        await eng.start()
        cleaner = app.state.cleaner = Cleaner(eng)  # retention and blob cleanup passes
        cleaner.start()
        try:
            yield
        finally:
            await cleaner.stop()
            await eng.stop()
            if traces is not None:
                traces.shutdown()

    app = CoveAPI(
        title="Cove",
        version=__version__,
        description="Durable, autoscaled Python applications.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.add_middleware(auth.Guard, settings=settings)  # keys, roles, namespaces, limits
    app.fast_path = fastpath.FastPath(settings)  # invoke, status, output: the same Guard
    app.include_router(auth.router)
    app.include_router(applications.router)
    app.include_router(images.router)
    app.include_router(requests.router)
    app.include_router(secrets.router)
    app.include_router(observe.router)
    app.include_router(request_records.router)
    app.include_router(tensorlake_api.router)  # Tensorlake's API: /v1/namespaces/{ns}/...
    ui.install(app)  # the dashboard at /ui
    app.include_router(prometheus.router)

    @app.get("/healthz", tags=["health"], summary="Liveness, and room on the storage")
    async def healthz(request: Request) -> JSONResponse:
        """``{"status": "ok", "version", "storage"}``; ``503`` with ``"status":
        "storage_full"`` while the data folder's disk (or the database) is full: requests
        and deploys answer ``507`` then, running requests wait; it clears by itself once
        there is room (see cove.server.health)."""
        engine = getattr(request.app.state, "engine", None)
        room = await health.storage(engine) if engine is not None else None
        full = room is not None and room["full"]
        body: dict[str, Any] = {"status": "storage_full" if full else "ok", "version": __version__}
        if room is not None:
            body["storage"] = room
        return JSONResponse(body, status_code=503 if full else 200)

    @app.get("/status", tags=["health"], summary="The machine: capacity, GPUs, regions")
    async def machine(request: Request) -> dict[str, Any]:
        """What this server can run: its CPUs and memory and how much is in use, its
        GPUs and which container holds each, its regions, and live requests; and which
        replica it is, the live replicas over its database, the requests it runs and how
        many it took over from other replicas."""
        engine = request.app.state.engine
        return {
            "version": __version__,
            "capacity": engine.capacity.describe(),
            "gpus": _gpus(engine),
            "regions": engine.settings.regions,
            "live_requests": len(engine.live),
            "replica": await engine.leases.describe(),
        }

    return app


def _gpus(engine: Engine) -> list[dict[str, Any]]:
    """Each GPU as nvidia-smi names it, with the container holding it (None: free)."""
    holder = {index: who for who, held in engine.gpus.in_use().items() for index in held}
    return [
        {**dataclasses.asdict(gpu), "held_by": holder.get(gpu.index)} for gpu in engine.gpus.gpus
    ]
