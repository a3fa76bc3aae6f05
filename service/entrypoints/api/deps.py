"""What the routes receive through FastAPI's ``Depends``: the daemon's parts and authentication.

:func:`~service.entrypoints.api.app.create_app` stores one :class:`ApiContext`
on ``app.state``; routes ask for it, or for the services or job runner in it,
through the typed aliases below instead of closing over them.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Header, Request

from service.bootstrap import Services
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


def authorised(svc: ServicesDep,
               authorization: Annotated[str | None, Header()] = None) -> None:
    """With ``HOLDFAST_API_TOKEN`` set, require ``Authorization: Bearer <token>``
    (compared in constant time)."""
    token = svc.settings.api_token
    if token is None:
        return
    expected = f"Bearer {token.get_secret_value()}"
    if authorization is None or not hmac.compare_digest(authorization, expected):
        raise Unauthorised()


AUTHORISED = [Depends(authorised)]
