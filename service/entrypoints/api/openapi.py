"""The OpenAPI document's failures: every status each route can answer, all as RFC 9457 problems.

Routes name the statuses their use case raises (404, 409, 400 for values it
refuses) with ``responses=errors(...)``; :func:`document_errors` adds those
that come from the app around them: 500 everywhere; 401 (the token), 403 (the
scope) and 503 (catalog, Docker, storage unreachable; shutting down) on every
``/v1`` route; 400 (malformed body) and 413 (the body cap) where a route takes
a body. It also drops FastAPI's default 422, which this API never answers
(validation is 400). Every failure is the one
:class:`~service.entrypoints.api.problems.Problem` schema under
``application/problem+json``, and a 401 documents its ``WWW-Authenticate``
header. Every ``/v1`` operation carries the bearer scheme and its scope, as the
``x-holdfast-scope`` extension and a line of its description
(:func:`operation_scope`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from service.entrypoints.api.auth import is_protected
from service.entrypoints.api.openapi_links import add_links
from service.entrypoints.api.problems import PROBLEM_MEDIA_TYPE, Problem
from service.tokens import Scope

DESCRIPTIONS: dict[int, str] = {
    400: "Bad input: a body, path or query that does not fit the route, or a value it refuses",
    401: "Missing, unknown or expired bearer token",
    403: "The token lacks the scope this operation needs (the error names it)",
    404: "No such instance, snapshot, volume, job or image",
    409: "Conflicts with the current state: a run in progress, a name taken, a volume in use",
    413: "The request body is over the API's limit (256 KiB)",
    500: "Internal error; the daemon's log has the details",
    503: "The catalog, the Docker engine, a storage target or a notification channel is "
         "unreachable, or the daemon is shutting down",
}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_WWW_AUTHENTICATE = {"WWW-Authenticate": {
    "description": "`Bearer`: send an API token as `Authorization: Bearer <token>`",
    "schema": {"type": "string", "enum": ["Bearer"]}}}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route decorator: ``statuses`` with the problem body."""
    return {status: _error_response(status) for status in statuses}


def _error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {"description": DESCRIPTIONS[status],
                                "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}}
    if status == 401:
        response["headers"] = _WWW_AUTHENTICATE
    return response


def operation_id(route: APIRoute) -> str:
    """An operation's id: its route function's name (``start_backup``,
    ``list_snapshots``), unique across the API, so a generated client's
    functions read as the operations do rather than as FastAPI's default
    ``start_backup_v1_instances__name__backups_post``."""
    return route.name


BEARER_SCHEME = "HTTPBearer"
"""The security scheme FastAPI names after :class:`fastapi.security.HTTPBearer`."""


def operation_scope(op: dict[str, Any]) -> str:
    """The scope an operation enforces, as FastAPI wrote it into the operation's
    security requirement (:func:`~service.entrypoints.api.deps.requires` passes it
    down as a security scope); ``admin`` for a ``/v1`` route that names none,
    as :func:`~service.entrypoints.api.deps.authorised` enforces."""
    for requirement in op.get("security", ()):
        for scopes in requirement.values():
            if scopes:
                return str(scopes[0])
    return str(Scope.ADMIN)


def _document_scope(op: dict[str, Any]) -> None:
    scope = operation_scope(op)
    op["x-holdfast-scope"] = scope
    op["security"] = [{BEARER_SCHEME: [scope]}]
    line = f"Needs a token with the `{scope}` scope" + (
        "." if scope == Scope.ADMIN else " (or `admin`).")
    op["description"] = f"{op.get('description', '').rstrip()}\n\n{line}".lstrip()


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (FastAPI's document) with the app-wide failures added to every
    operation, each ``/v1`` operation's scope (:func:`operation_scope`) and the
    422 and its schemas gone; changed in place and returned."""
    for path, item in schema.get("paths", {}).items():
        for op in item.values():
            responses: dict[str, Any] = op.setdefault("responses", {})
            responses.pop("422", None)
            added = {500}
            if is_protected(path):
                added |= {401, 403, 503}
                _document_scope(op)
            if "requestBody" in op:
                added |= {400, 413}
            for status in added:
                responses.setdefault(str(status), _error_response(status))
            op["responses"] = dict(sorted(responses.items()))
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components.setdefault("Problem", Problem.model_json_schema(
        ref_template="#/components/schemas/{model}"))
    return schema


def restore_example_nulls(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the nulls of its models' examples put back. FastAPI encodes
    the document without None values, which strips ``"error": null`` and the like
    from every example, so an example would miss required (nullable) fields and
    not fit its own schema; changed in place and returned."""
    components = schema.get("components", {}).get("schemas", {})
    for model in components.values():
        for example in model.get("examples", ()):
            _fill_nulls(components, model, example)
    return schema


def _fill_nulls(components: dict[str, Any], model: dict[str, Any], value: Any) -> None:
    model = _resolved(components, model)
    if isinstance(value, list):
        for item in value:
            _fill_nulls(components, model.get("items", {}), item)
        return
    if not isinstance(value, dict) or "properties" not in model:
        return
    required = set(model.get("required", ()))
    for name, prop in model["properties"].items():
        members = [_resolved(components, m) for m in prop.get("anyOf", [prop])]
        if name not in value:
            if name in required and any(m.get("type") == "null" for m in members):
                value[name] = None
            continue
        for member in members:
            if member.get("type") in ("object", "array") or "properties" in member:
                _fill_nulls(components, member, value[name])


def _resolved(components: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return components.get(ref.rsplit("/", 1)[-1], {}) if isinstance(ref, str) else schema


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the document with :func:`document_errors` applied."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_links(document_errors(restore_example_nulls(build())))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
