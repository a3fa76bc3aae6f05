"""The FastAPI application: the routers, authentication, limits, errors and docs.

Routes (:mod:`service.entrypoints.api.routes`) parse input, call one use case
and return its record's JSON, the same shape the CLI prints with ``--json``.
Errors from :mod:`backup.errors` become HTTP statuses through the one
:mod:`~service.entrypoints.error_table`, and every failure has the one shape of
:mod:`~service.entrypoints.api.problems`; nothing below the entry points knows
about HTTP. Every ``/v1`` route requires ``Authorization: Bearer <token>``
(an API token from the catalog, or the bootstrap ``HOLDFAST_API_TOKEN``),
checked (:mod:`~service.entrypoints.api.limits`) before a body is read, and
its scope (:func:`~service.entrypoints.api.deps.requires`); bodies are capped
at 256 KiB. ``/docs`` and ``/redoc``
serve their scripts from the installed ``fastapi-offline`` package, so they work
without a network; the web dashboard (:mod:`service.entrypoints.ui`) is under ``/ui``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from backup.types import utcnow
from service.bootstrap import Services
from service.entrypoints.api.deps import ApiContext
from service.entrypoints.api.limits import MAX_BODY_BYTES, RequestGuard
from service.entrypoints.api.openapi import install_openapi, operation_id
from service.entrypoints.api.problems import install_error_handlers
from service.entrypoints.api.routes import ROUTERS
from service.observability.metrics import Metrics
from service.usecases import tokens
from service.usecases.instances import Instance
from service.usecases.jobs import JobRunner
from service.version import holdfast_version


def create_app(
    services: Services,
    jobs: JobRunner,
    *,
    next_run: Callable[[str, str | None], datetime | None] | None = None,
    metrics: Metrics | None = None,
    refresh: Callable[[], object] | None = None,
    known_instances: Callable[[], list[Instance] | None] | None = None,
    max_body: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The API over ``services``: see :class:`~service.entrypoints.api.deps.ApiContext`
    for what each optional part adds; ``max_body`` is the request body cap in bytes."""
    app = FastAPIOffline(
        title="Holdfast",
        version=holdfast_version(),
        generate_unique_id_function=operation_id,
        description="Snapshots and restores of databases running in Docker containers. "
                    "Every failure is an RFC 9457 problem (`application/problem+json`): "
                    "`type` a URI per error kind, `title`, `status`, `detail` (one line), "
                    "`kind` (the error's class) and `error` (the same line as `detail`); "
                    f"request bodies are limited to {max_body // 1024} KiB (413 above).",
    )
    app.state.holdfast = ApiContext(services=services, jobs=jobs, metrics=metrics or Metrics(),
                                    next_run=next_run, refresh=refresh,
                                    known_instances=known_instances)
    install_error_handlers(app)
    app.add_middleware(RequestGuard, max_body=max_body,
                       authenticate=lambda header: tokens.authenticate(services, header, utcnow()))
    for router in ROUTERS:
        app.include_router(router)
    # Imported here: the dashboard builds on this package's modules, so a top-level
    # import would run while service.entrypoints.api itself is being imported.
    from service.entrypoints.ui.app import install_dashboard

    install_dashboard(app)
    install_openapi(app)
    return app
