"""The HTTP API (FastAPI): thin routes over :mod:`service.usecases`."""

from service.api.app import create_app

__all__ = ["create_app"]
