"""The API token every test client sends, and a TestClient that sends it.

:func:`tests.fakes.services.fake_world` and :class:`tests.harness.daemon.Daemon`
give the daemon this token as ``HOLDFAST_API_TOKEN`` (the bootstrap admin
token), so a test that is not about authentication talks to the API as an
admin through :func:`api_client` or :data:`AUTH`, and one that is about it
makes catalog tokens of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the fakes import this module; the Docker-free tier need not load FastAPI
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

TEST_TOKEN = "hf_test-admin-token-not-secret"
"""The bootstrap admin token of every test daemon."""
AUTH = {"Authorization": f"Bearer {TEST_TOKEN}"}


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def api_client(app: FastAPI, token: str | None = TEST_TOKEN, **kwargs: Any) -> TestClient:
    """A TestClient on ``app`` that sends ``token`` (None: no Authorization header)."""
    from fastapi.testclient import TestClient

    return TestClient(app, headers=bearer(token) if token is not None else None, **kwargs)
