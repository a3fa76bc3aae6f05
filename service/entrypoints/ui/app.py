"""Mounting the dashboard on the daemon's app: its pages, its buttons and its static files.

:func:`install_dashboard` is called by
:func:`~service.entrypoints.api.app.create_app`: the dashboard is served on
the API's port under ``/ui`` (``/`` redirects there), its scripts and styles
from the package under ``/ui/static``. It shares the API's context (the
services and the job runner); the API's bearer-token guard does not apply
under ``/ui``, where the session cookie is checked instead.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from service.entrypoints.ui import actions, pages
from service.entrypoints.ui.rendering import Dashboard

STATIC_PATH = "/ui/static"


def install_dashboard(app: FastAPI) -> None:
    """Add the dashboard's routes and static files to ``app``."""
    app.state.dashboard = Dashboard()
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.mount(STATIC_PATH, StaticFiles(packages=[("service.entrypoints.ui", "static")]),
              name="ui-static")

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/ui", status_code=307)
