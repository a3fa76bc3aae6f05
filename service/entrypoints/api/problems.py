"""Every failure of the HTTP API as one RFC 9457 problem, ``application/problem+json``.

The body is ``{"type", "title", "status", "detail", "error", "kind"}``:
``type`` is a stable URI per error kind (:data:`PROBLEM_TYPE_PREFIX` plus the
error's class name, a ``tag:`` URI of RFC 4151: an identifier, never fetched,
since the project serves no documentation site of its own), ``title`` that
kind's short summary, ``status`` the HTTP status, ``detail`` the one line
saying what went wrong and what to do, ``kind`` the error's class name
(``InstanceNotFound``, ``InvalidInput``: what ``type`` was before problems,
and what a client maps back to a class), and ``error`` the same line as
``detail``, kept for clients written before. A 409 for a run in progress adds
``running`` (that job's or snapshot's id); a 401 carries ``WWW-Authenticate: Bearer``.

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

import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

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


PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "tag:holdfast,2026:problem/"
"""``type`` is this plus the error's class name (``kind``). A ``tag:`` URI
(RFC 4151) names a problem type without promising a page behind it: problem
types are compared, not fetched, and an ``https://`` URI would have to be a
site the project owns and serves for as long as clients use the names."""


def problem_type(kind: str) -> str:
    """The stable ``type`` URI of error kind ``kind`` (a class name)."""
    return PROBLEM_TYPE_PREFIX + kind


def problem_title(kind: str) -> str:
    """The short summary of error kind ``kind``: its class name in words
    (``InstanceNotFound`` -> ``Instance not found``), the same for every occurrence."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+", kind) or [kind]
    rest = [word if word.isupper() and len(word) > 1 else word.lower() for word in words[1:]]
    return " ".join([words[0], *rest])


class Problem(BaseModel):
    """The body of every failure (RFC 9457), 4xx and 5xx alike."""

    type: str = Field(json_schema_extra={"format": "uri"},
                      description="the error kind as a stable URI: "
                      f"{PROBLEM_TYPE_PREFIX}<kind>",
                      examples=[problem_type("InstanceNotFound")])
    title: str = Field(description="the kind's short summary", examples=["Instance not found"])
    status: int = Field(description="the HTTP status", examples=[404])
    detail: str = Field(description="what went wrong and what to do, on one line",
                        examples=["no instance named 'shop'; 'holdfast instances' lists them"])
    error: str = Field(description="the same line as detail, kept for older clients",
                       examples=["no instance named 'shop'; 'holdfast instances' lists them"])
    kind: str = Field(description="the error's class, e.g. InstanceNotFound, InvalidInput, "
                      "Unauthorised, BodyTooLarge: what `type` held before, and the class "
                      "a client maps the problem back to", examples=["InstanceNotFound"])
    running: str | None = Field(default=None, description="with a 409 for a run already in "
                                "progress: the id of that job or snapshot")

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "type": problem_type("InstanceNotFound"), "title": "Instance not found",
        "status": 404, "detail": "no instance named 'shop'; 'holdfast instances' lists them",
        "error": "no instance named 'shop'; 'holdfast instances' lists them",
        "kind": "InstanceNotFound"}]})


def error_response(status: int, message: str, kind: str, *,
                   headers: Mapping[str, str] | None = None,
                   extra: Mapping[str, Any] | None = None) -> JSONResponse:
    """The one problem body for error kind ``kind``, with ``message`` made one
    bounded line (as ``detail`` and ``error``)."""
    line = one_line(message)
    body: dict[str, Any] = {"type": problem_type(kind), "title": problem_title(kind),
                            "status": status, "detail": line, "error": line, "kind": kind,
                            **(extra or {})}
    return JSONResponse(status_code=status, content=body, headers=dict(headers or {}),
                        media_type=PROBLEM_MEDIA_TYPE)


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
    headers = exc.headers
    if exc.status_code == 404:
        message = f"no route {request.method} {path}; see /docs for the routes"
    elif exc.status_code == 405:
        others = {k: v for k, v in (exc.headers or {}).items() if k.lower() != "allow"}
        allowed = allowed_methods(request, (exc.headers or {}).get("Allow", ""))
        headers = {**others, "Allow": allowed}
        message = f"{request.method} is not allowed on {path}; use {allowed or 'another method'}"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, message, _HTTP_TYPES.get(exc.status_code, "HTTPError"),
                          headers=headers)


def allowed_methods(request: Request, fallback: str) -> str:
    """Every method the OpenAPI document lists at the request's path, for
    ``Allow``; ``fallback`` (Starlette's) for a path it does not list.
    Starlette names only the first matching route's methods, and FastAPI
    makes one route per method."""
    methods: set[str] = set()
    for template, item in request.app.openapi().get("paths", {}).items():
        if compile_path(template)[0].match(request.url.path):
            methods |= {method.upper() for method in item}
    return ", ".join(sorted(methods)) or fallback


async def _internal_error(_: Request, __: Exception) -> JSONResponse:
    """Whatever escaped the error tree: the client learns where to look, the
    daemon's log gets the traceback (Starlette re-raises after this answer)."""
    return error_response(500, "internal error; the daemon's log has the details",
                          "InternalError")
