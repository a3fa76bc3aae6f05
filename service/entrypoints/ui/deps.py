"""What dashboard routes receive through ``Depends``: the session, the API's context, the renderer.

The daemon's parts come from the same :class:`~service.entrypoints.api.deps.ApiContext`
the API uses; :data:`SessionDep` is the signed-in session (checked as
:func:`~service.entrypoints.ui.session.session_of` says), and
:func:`require` refuses, with the API's one line, what the session's token may not do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.entrypoints.api.deps import ContextDep
from service.entrypoints.ui.rendering import Dashboard, dashboard_of
from service.entrypoints.ui.session import Session, session_of


def session(request: Request, ctx: ContextDep) -> Session:
    return session_of(request, ctx.services, dashboard_of(request).keys)


SessionDep = Annotated[Session, Depends(session)]
DashboardDep = Annotated[Dashboard, Depends(dashboard_of)]


def require(who: Session, scope: str) -> None:
    """Raise :class:`~backup.errors.Forbidden` unless ``who`` holds ``scope``."""
    who.principal.require(scope)
