"""What dashboard routes receive through ``Depends``: the session, the API's context, the renderer.

The daemon's parts come from the same :class:`~service.entrypoints.api.deps.ApiContext`
the API uses; :data:`SessionDep` is the signed-in session (checked as
:func:`~service.entrypoints.ui.session.session_of` says; pages also need ``read``), and
:func:`require` refuses, with the API's one line, what the session's token may not do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.entrypoints.api.deps import ContextDep
from service.entrypoints.ui.rendering import Dashboard, dashboard_of
from service.entrypoints.ui.session import Session, session_of
from service.tokens import Scope


def session(request: Request, ctx: ContextDep) -> Session:
    """The signed-in session; a page (any GET) also needs ``read``, as the
    ``GET /v1`` routes it shows do (each button checks its own scope)."""
    found = session_of(request, ctx.services, dashboard_of(request).keys)
    if request.method == "GET":
        found.principal.require(Scope.READ)
    return found


SessionDep = Annotated[Session, Depends(session)]
DashboardDep = Annotated[Dashboard, Depends(dashboard_of)]


def require(who: Session, scope: str) -> None:
    """Raise :class:`~backup.errors.Forbidden` unless ``who`` holds ``scope``."""
    who.principal.require(scope)
