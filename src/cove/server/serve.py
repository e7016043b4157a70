"""Running the API under uvicorn, with Cove's graceful shutdown.

On SIGTERM (or Ctrl-C) the server first stops accepting requests (they get 503) while it
keeps serving status and output reads, lets running requests finish for up to
``shutdown_grace`` seconds, and only then stops listening and stops its containers. What
has not finished by then is in the journal and resumes on the next start. A second signal
stops at once.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from types import FrameType

import uvicorn
from fastapi import FastAPI

from cove.engine.engine import Engine
from cove.engine.settings import Settings
from cove.server.app import create_app

#: The garbage collector's thresholds in the server (CPython's are 700, 10, 10). A map of
#: 10,000 calls keeps tens of thousands of objects alive at once; at the defaults that
#: triggered six full collections of about 0.1 s each during it (a quarter of the server's
#: CPU for the map). Here a full collection comes after about 4 million allocations, and the
#: server collects everything anyway once it goes idle (Engine._release_memory_when_idle).
GC_THRESHOLDS = (10_000, 20, 20)


def tune_gc() -> None:
    """Move what start-up made (modules, the app) out of the collector's sight for good, and
    collect less often (GC_THRESHOLDS); docs/benchmarks.md, "The hot path"."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI, grace: float) -> None:
        super().__init__(config)
        self.cove_app = app
        self.grace = grace
        self.draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        engine = getattr(self.cove_app.state, "engine", None)
        loop = getattr(engine, "_loop", None)
        if self.draining or engine is None or loop is None:
            super().handle_exit(sig, frame)
            return
        self.draining = True
        engine.begin_shutdown()

        async def drain_then_exit() -> None:
            await engine.drain(self.grace)
            super(GracefulServer, self).handle_exit(sig, frame)

        loop.call_soon_threadsafe(lambda: loop.create_task(drain_then_exit()))


def serve(settings: Settings) -> None:
    """Run a Cove server in the foreground until it is stopped."""
    # The engine is made before the server starts, so what stops it from starting (a
    # secrets key that cannot read the stored secrets, say) ends `cove server` with its
    # message instead of a traceback from the ASGI lifespan.
    app = create_app(settings, Engine(settings))
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=5,
        # The C parser and event loop (uvicorn's "standard" extra): on the per-call path
        # they cost a fraction of h11's and asyncio's pure-Python ones (docs/benchmarks.md).
        http="httptools",
        loop="none",
    )
    server = GracefulServer(config, app, settings.shutdown_grace)
    tune_gc()
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(server.serve())


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop (uvicorn's "standard" extra), or asyncio's where it is not built (Windows)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
