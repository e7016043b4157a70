"""The web dashboard at ``/ui``: server-rendered pages (Jinja2), static CSS and JavaScript.

Pages read through the same route functions as the JSON API, so they show what it shows,
within the caller's namespace. Live parts (progress, timeline, logs, containers) update
from the API's Server-Sent Events and from page fragments; without JavaScript the pages
reload themselves while something runs.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from cove.server.ui.pages import router

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Serve the dashboard's pages and its static files on ``app``."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")


__all__ = ["install", "router"]
