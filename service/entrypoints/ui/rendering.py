"""The dashboard's templates, their filters, and the one way a failure is shown.

:class:`Dashboard` holds the Jinja2 environment (autoescaped, templates from
the package) and the session keys; it is made when the app is built, never at
import. :class:`DashboardRoute` gives every dashboard route two things: a
posted form parsed into ``request.state.form`` (URL-encoded, bounded), and
errors from :mod:`backup.errors` rendered as one readable line with the
status of the one :mod:`~service.entrypoints.error_table` (a fragment for
htmx, a page otherwise; a missing session sends a page to the sign-in form).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote

import jinja2
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError

from backup import errors
from backup.types import utcnow
from service.entrypoints.api.problems import one_line, validation_message
from service.entrypoints.error_table import http_status_for
from service.entrypoints.ui.session import SessionKeys

logger = logging.getLogger(__name__)

MAX_FORM_FIELDS = 50
NONE_SHOWN = "\N{EN DASH}"
"""What a missing figure is shown as."""


def human_bytes(value: int | float | None) -> str:
    """``1536`` -> ``1.5 KiB``; None -> an en dash."""
    if value is None:
        return NONE_SHOWN
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} PiB"  # pragma: no cover


def human_seconds(value: float | None) -> str:
    """``75`` -> ``1m 15s``; None -> an en dash."""
    if value is None:
        return NONE_SHOWN
    seconds = round(value)
    if seconds < 60:
        return f"{value:.1f}s" if value < 10 else f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours < 48 else f"{hours // 24}d {hours % 24}h"


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """How long before ``now`` ``moment`` was (``in …`` when ahead); never -> ``never``."""
    if moment is None:
        return "never"
    delta = ((now or utcnow()) - moment).total_seconds()
    return f"in {human_seconds(-delta)}" if delta < 0 else f"{human_seconds(delta)} ago"


@dataclass
class Dashboard:
    """What the dashboard's routes share, kept on ``app.state.dashboard``."""

    keys: SessionKeys = field(default_factory=SessionKeys)
    env: jinja2.Environment = field(default_factory=lambda: _environment())

    def page(self, request: Request, template: str, status: int = 200,
             headers: Mapping[str, str] | None = None, **context: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(request=request, **context)
        return HTMLResponse(html, status_code=status, headers=dict(headers or {}))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("service.entrypoints.ui", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(bytes=human_bytes, seconds=human_seconds, ago=ago, urlpart=quote)
    env.globals["isoformat"] = lambda moment: moment.isoformat() if moment else ""
    return env


def dashboard_of(request: Request) -> Dashboard:
    found: Dashboard = request.app.state.dashboard
    return found


Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


class DashboardRoute(APIRoute):
    """A route that parses its form first and renders its failures (see the module)."""

    def get_route_handler(self) -> Endpoint:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            request.state.form = await _form(request)
            try:
                return await handler(request)
            except errors.HoldfastError as exc:
                return failure(request, http_status_for(exc), str(exc), exc)
            except (RequestValidationError, ValidationError) as exc:
                return failure(request, 400, validation_message(exc.errors()).split(";")[0])

        return handle


async def _form(request: Request) -> dict[str, str]:
    if request.method != "POST" or not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"):
        return {}
    body = (await request.body()).decode("utf-8", "replace")
    pairs = parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    return {key: value.strip() for key, value in pairs}


def failure(request: Request, status: int, message: str,
            exc: errors.HoldfastError | None = None) -> Response:
    """The one readable line for a failure: a fragment for htmx (swapped into
    the page's alert area), the sign-in page for a lost session, else a page."""
    line = one_line(message)
    htmx = request.headers.get("hx-request") == "true"
    if isinstance(exc, errors.Unauthorised):
        target = "/ui/login?next=" + quote(_next_path(request), safe="")
        if htmx:
            return Response(status_code=401, headers={"HX-Redirect": target})
        if request.method == "GET":
            return RedirectResponse(target, status_code=303)
    dashboard = dashboard_of(request)
    if htmx:
        return dashboard.page(request, "fragments/error.html", status, message=line)
    return dashboard.page(request, "error.html", status, message=line, session=None)


def _next_path(request: Request) -> str:
    current = request.headers.get("hx-current-url") or str(request.url)
    path = current.split(request.url.netloc, 1)[-1] if "://" in current else current
    return safe_next(path)


def safe_next(path: str | None) -> str:
    """Where to go after signing in: a dashboard path, never another site."""
    if not path or not path.startswith("/ui") or path.startswith("//") or "\\" in path:
        return "/ui"
    return path
