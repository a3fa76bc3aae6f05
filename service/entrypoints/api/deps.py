"""What the routes receive through FastAPI's ``Depends``: the daemon's parts, the token, the scope.

:func:`~service.entrypoints.api.app.create_app` stores one :class:`ApiContext`
on ``app.state``; routes ask for it, or for the services or job runner in it,
through the typed aliases below instead of closing over them. Each router
depends on :data:`AUTHORISED` (a valid token) and each route names its scope
with ``dependencies=READ`` (or ``BACKUP``, ``RESTORE``, ``ADMIN``:
:func:`requires`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backup.types import utcnow
from service.bootstrap import Services
from service.entrypoints.api.auth import PRINCIPAL_KEY, authorization_header, principal_in
from service.observability.metrics import Metrics
from service.tokens import Scope
from service.usecases import tokens
from service.usecases.instances import Instance
from service.usecases.jobs import JobRunner
from service.usecases.tokens import Principal


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


_BEARER = HTTPBearer(auto_error=False, description="an API token (`holdfast tokens create`) "
                     "or the daemon's HOLDFAST_API_TOKEN, as `Authorization: Bearer <token>`")
"""Declares the scheme in the OpenAPI document (Swagger UI's Authorize button) on
every operation that depends on it; the check is
:func:`~service.usecases.tokens.authenticate`."""

BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]


def principal(request: Request, svc: ServicesDep) -> Principal:
    """Who the request comes from: what the middleware found before the body
    was read or, on an app without it, authenticated here. Raises
    :class:`~backup.errors.Unauthorised` (401)."""
    found = principal_in(request.scope)
    if found is None:
        found = tokens.authenticate(svc, authorization_header(request.scope), utcnow())
        request.scope[PRINCIPAL_KEY] = found
    return found


def authorised(request: Request, svc: ServicesDep, _: BearerDep) -> None:
    """A valid token (401 otherwise). A route names its scope with
    :func:`requires`; one that names none needs ``admin`` (deny by default)."""
    who = principal(request, svc)
    route = request.scope.get("route")
    if route_scope(getattr(route, "dependencies", ())) is None:
        who.require(Scope.ADMIN)


AUTHORISED = [Depends(authorised)]
"""A router's guard: a valid token. Each route adds its scope with :func:`requires`
(without one, the route needs ``admin``)."""


class ScopeRequirement:
    """The dependency :func:`requires` makes: a valid token holding ``scope``.
    The OpenAPI document reads ``scope`` off each route (:func:`route_scope`)."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def __call__(self, request: Request, svc: ServicesDep, _: BearerDep) -> None:
        principal(request, svc).require(self.scope)


def requires(scope: Scope) -> list[Any]:
    """``dependencies=`` for a route that needs ``scope``: 401 without a valid
    token, 403 naming ``scope`` when the token lacks it (admin has every scope)."""
    # Security (not Depends) hands the scope down to the bearer scheme inside, so
    # the OpenAPI document lists it in the operation's security requirement.
    return [Security(ScopeRequirement(scope), scopes=[str(scope)])]


READ = requires(Scope.READ)
BACKUP = requires(Scope.BACKUP)
RESTORE = requires(Scope.RESTORE)
ADMIN = requires(Scope.ADMIN)


def route_scope(dependencies: Iterable[Any]) -> str | None:
    """The scope a route's ``dependencies`` (FastAPI's ``Depends``) require, if any."""
    for dependency in dependencies:
        needed = getattr(dependency, "dependency", None)
        if isinstance(needed, ScopeRequirement):
            return str(needed.scope)
    return None
