"""The HTTP API: an ASGI app over the engine."""

from cove.server.app import create_app

__all__ = ["create_app"]
