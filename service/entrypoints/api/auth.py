"""Who a ``/v1`` request comes from: the one authentication behind both guards.

:mod:`~service.entrypoints.api.limits` authenticates the raw request before any
body is read and leaves the :class:`~service.usecases.tokens.Principal` in the
ASGI scope under :data:`PRINCIPAL_KEY`; the routes' dependencies
(:mod:`~service.entrypoints.api.deps`) take it from there, or authenticate
themselves when a route is mounted without the middleware, and check the
route's scope. The header is handed on as the client's bytes: a header is
whatever bytes a client sent, and ``hmac.compare_digest`` refuses ``str``
with non-ASCII characters (a 500, not the 401 such a header deserves).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from service.usecases.tokens import Principal

UNAUTHORISED_HEADERS = {"WWW-Authenticate": "Bearer"}
PROTECTED_PREFIX = "/v1"
PRINCIPAL_KEY = "holdfast.principal"
"""The ASGI scope key the middleware leaves the request's principal under."""


def is_protected(path: str) -> bool:
    """Whether a route path (without the server's root path) needs a token."""
    return path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")


def authorization_header(scope: MutableMapping[str, Any]) -> bytes | None:
    """The first ``Authorization`` header of an ASGI ``scope``, as the client's bytes."""
    for key, value in scope.get("headers", ()):
        if key.lower() == b"authorization":
            return bytes(value)
    return None


def principal_in(scope: MutableMapping[str, Any]) -> Principal | None:
    """The principal the middleware found for this request, if it ran."""
    found = scope.get(PRINCIPAL_KEY)
    return found if isinstance(found, Principal) else None
