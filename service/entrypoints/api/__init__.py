"""The HTTP API: a FastAPI app of one router per resource (see :mod:`.routes`)."""

from service.entrypoints.api.app import create_app

__all__ = ["create_app"]
