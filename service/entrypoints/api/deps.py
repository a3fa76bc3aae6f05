"""What the routes receive through FastAPI's ``Depends``: the daemon's parts and authentication.

:func:`~service.entrypoints.api.app.create_app` stores one :class:`ApiContext`
on ``app.state``; routes ask for it, or for the services or job runner in it,
through the typed aliases below instead of closing over them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.bootstrap import Services
from service.entrypoints.api.auth import bearer_matches
from service.observability.metrics import Metrics
from service.usecases.instances import Instance
from service.usecases.jobs import JobRunner


class Unauthorised(Exception):
    """A ``/v1`` request without the right bearer token (answered 401)."""


@dataclass(frozen=True)
class ApiContext:
    services: Services
    jobs: JobRunner
    metrics: Metrics
    next_run: Callable[[str, str | None], datetime | None] | None = None
    """The daemon's scheduler; None lets the use case estimate."""
    refresh: Callable[[], object] | None = None
    """Re-runs discovery after a policy change so the scheduler follows at once."""
    known_instances: Callable[[], list[Instance] | None] | None = None
    """Discovery's live view (None while disconnected): spares each listing a pass over Docker."""


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.holdfast
    return ctx


ContextDep = Annotated[ApiContext, Depends(context)]


def services(ctx: ContextDep) -> Services:
    return ctx.services


def jobs(ctx: ContextDep) -> JobRunner:
    return ctx.jobs


ServicesDep = Annotated[Services, Depends(services)]
JobsDep = Annotated[JobRunner, Depends(jobs)]


_BEARER = HTTPBearer(auto_error=False, description="the daemon's HOLDFAST_API_TOKEN; "
                     "needed only when it has one")
"""Declares the scheme in the OpenAPI document (Swagger UI's Authorize button);
the check itself is :func:`~service.entrypoints.api.auth.bearer_matches`."""


def authorised(request: Request, svc: ServicesDep,
               _: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]) -> None:
    """With ``HOLDFAST_API_TOKEN`` set, require ``Authorization: Bearer <token>``
    (compared in constant time, as bytes). The API's middleware has checked the
    same before reading the body; this keeps a route guarded wherever it is mounted."""
    header = request.headers.get("authorization")
    # Starlette decodes header bytes as latin-1: encoding back gives the client's bytes.
    raw = header.encode("latin-1") if header is not None else None
    if not bearer_matches(raw, svc.settings.api_token):
        raise Unauthorised()


AUTHORISED = [Depends(authorised)]
