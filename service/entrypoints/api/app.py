"""The FastAPI application: the routers, authentication and error mapping.

Routes (:mod:`service.entrypoints.api.routes`) parse input, call one use case
and return its record's JSON, the same shape the CLI prints with ``--json``.
Errors from :mod:`backup.errors` become HTTP statuses through the one
:mod:`~service.entrypoints.error_table`; nothing below the entry points knows
about HTTP. If ``HOLDFAST_API_TOKEN`` is set, every ``/v1`` route requires
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from backup import errors
from service.bootstrap import Services
from service.entrypoints.api.deps import ApiContext, Unauthorised
from service.entrypoints.api.routes import ROUTERS
from service.entrypoints.error_table import http_status_for
from service.observability.metrics import Metrics
from service.runs import AlreadyRunning
from service.usecases.instances import Instance
from service.usecases.jobs import JobRunner


def create_app(
    services: Services,
    jobs: JobRunner,
    *,
    next_run: Callable[[str, str | None], datetime | None] | None = None,
    metrics: Metrics | None = None,
    refresh: Callable[[], object] | None = None,
    known_instances: Callable[[], list[Instance] | None] | None = None,
) -> FastAPI:
    """The API over ``services``: see :class:`~service.entrypoints.api.deps.ApiContext`
    for what each optional part adds."""
    app = FastAPI(
        title="Holdfast",
        version="0.1.0",
        description="Snapshots and restores of databases running in Docker containers.",
    )
    app.state.holdfast = ApiContext(services=services, jobs=jobs, metrics=metrics or Metrics(),
                                    next_run=next_run, refresh=refresh,
                                    known_instances=known_instances)
    app.add_exception_handler(errors.HoldfastError, _holdfast_error)  # type: ignore[arg-type]
    app.add_exception_handler(Unauthorised, _unauthorised)
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    for router in ROUTERS:
        app.include_router(router)
    return app


async def _holdfast_error(_: Request, exc: errors.HoldfastError) -> JSONResponse:
    body: dict[str, Any] = {"error": str(exc), "type": type(exc).__name__}
    if isinstance(exc, AlreadyRunning):
        body["running"] = exc.holder
    return JSONResponse(status_code=http_status_for(exc), content=body)


async def _unauthorised(_: Request, __: Exception) -> JSONResponse:
    return JSONResponse(status_code=401, content={"error": "missing or wrong bearer token",
                                                  "type": "Unauthorised"},
                        headers={"WWW-Authenticate": "Bearer"})


async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
    """A body, path or query that does not fit the route's schema is bad input
    like any other: 400 with the one error shape, naming the first problem."""
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(part) for part in first.get("loc", ())) or "request"
    message = " ".join(str(first.get("msg", "invalid")).split())
    return JSONResponse(status_code=400, content={
        "error": f"{where}: {message}; see /docs for what this route takes",
        "type": "InvalidInput"})
