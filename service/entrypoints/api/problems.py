"""Every failure of the HTTP API as one JSON shape: ``{"error": "<one line>", "type": "<class>"}``.

Errors from :mod:`backup.errors` take their status from the one
:mod:`~service.entrypoints.error_table`; FastAPI's request validation becomes
400 (not its 422 ``{"detail": [...]}``), Starlette's 404 for an unknown path and
405 for a wrong method keep their status, and anything unexpected is a 500 that
says only where to look (the traceback goes to the daemon's log, not to the
client). A message never carries a client's input whole: it is collapsed to one
line and cut to :data:`MESSAGE_MAX` characters, and validation messages quote
at most :data:`EXCERPT_MAX` characters of any value or key a client sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from backup import errors
from service.entrypoints.api.auth import UNAUTHORISED_HEADERS
from service.entrypoints.error_table import http_status_for
from service.runs import AlreadyRunning

MESSAGE_MAX = 400
"""The longest ``error`` line; a longer one keeps its start and its end (the advice)."""
EXCERPT_MAX = 40
"""The most characters of one client-sent value a validation message quotes."""

_HTTP_TYPES = {404: "NotFound", 405: "MethodNotAllowed", 413: "BodyTooLarge"}


def one_line(text: str, limit: int = MESSAGE_MAX) -> str:
    """``text`` on one line of at most about ``limit`` characters: the middle of a
    longer one (typically a value the client sent) gives way to " … "."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    tail = limit // 3
    return f"{line[:limit - tail - 3]} … {line[-tail:]}"


def excerpt(value: object, limit: int = EXCERPT_MAX) -> str:
    """A client-sent value quoted for a message, cut to ``limit`` characters."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return repr(text) if isinstance(value, str) else text
    return f"{text[:limit]!r}… ({len(text)} characters)"


def error_response(status: int, message: str, kind: str, *,
                   headers: Mapping[str, str] | None = None,
                   extra: Mapping[str, Any] | None = None) -> JSONResponse:
    """The one error body, with ``message`` made one bounded line."""
    body: dict[str, Any] = {"error": one_line(message), "type": kind, **(extra or {})}
    return JSONResponse(status_code=status, content=body, headers=dict(headers or {}))


def install_error_handlers(app: FastAPI) -> None:
    """Make every failure ``app`` can answer take the one shape."""
    app.add_exception_handler(errors.HoldfastError, _holdfast_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _internal_error)


async def _holdfast_error(_: Request, exc: errors.HoldfastError) -> JSONResponse:
    extra = {"running": exc.holder} if isinstance(exc, AlreadyRunning) else None
    headers = UNAUTHORISED_HEADERS if isinstance(exc, errors.Unauthorised) else None
    return error_response(http_status_for(exc), str(exc), type(exc).__name__, extra=extra,
                          headers=headers)


async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
    """A body, path or query that does not fit the route's schema is bad input
    like any other: 400 naming the first problem."""
    return error_response(400, validation_message(exc.errors()), "InvalidInput")


def validation_message(problems: Any) -> str:
    """One line for pydantic's list of problems: where the first is, what it is,
    an excerpt of the value, and how many more there are."""
    listed = list(problems)
    first: Mapping[str, Any] = listed[0] if listed else {}
    # A location names dict keys the client chose (``body.labels.<key>``): cut each.
    loc = [str(part) if len(str(part)) <= EXCERPT_MAX else f"{str(part)[:EXCERPT_MAX]}…"
           for part in first.get("loc", ())]
    if first.get("type") == "json_invalid":
        where = "body"
        reason = first.get("ctx", {}).get("error", "decode error")
        what = f"not valid JSON ({reason} at character {loc[-1] if len(loc) > 1 else 0})"
    else:
        where = ".".join(loc) or "request"
        what = str(first.get("msg", "invalid"))
        value = first.get("input")
        if isinstance(value, str | int | float | bool) and first.get("type") != "missing":
            what += f" (got {excerpt(value)})"
    more = f" (and {len(listed) - 1} more problem(s))" if len(listed) > 1 else ""
    return f"{where}: {what}{more}; see /docs for what this route takes"


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own answers (no route, wrong method) in the one shape."""
    path = excerpt(request.url.path, 80)
    if exc.status_code == 404:
        message = f"no route {request.method} {path}; see /docs for the routes"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("allow", (exc.headers or {}).get("Allow", ""))
        message = f"{request.method} is not allowed on {path}; use {allowed or 'another method'}"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, message, _HTTP_TYPES.get(exc.status_code, "HTTPError"),
                          headers=exc.headers)


async def _internal_error(_: Request, __: Exception) -> JSONResponse:
    """Whatever escaped the error tree: the client learns where to look, the
    daemon's log gets the traceback (Starlette re-raises after this answer)."""
    return error_response(500, "internal error; the daemon's log has the details",
                          "InternalError")
