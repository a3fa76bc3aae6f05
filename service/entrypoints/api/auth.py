"""The bearer-token check, the one implementation behind both guards of ``/v1``.

:mod:`~service.entrypoints.api.limits` runs it on the raw request before any
body is read; the routes' ``authorised`` dependency
(:mod:`~service.entrypoints.api.deps`) runs it again, so a route mounted
without the middleware is still guarded the same way. The comparison is of
bytes in constant time: a header is whatever bytes a client sent, and
``hmac.compare_digest`` refuses ``str`` with non-ASCII characters (a 500, not
the 401 such a header deserves).
"""

from __future__ import annotations

import hmac

from pydantic import SecretStr

UNAUTHORISED_MESSAGE = ("missing or wrong bearer token; send "
                        "'Authorization: Bearer <HOLDFAST_API_TOKEN>'")
UNAUTHORISED_HEADERS = {"WWW-Authenticate": "Bearer"}
PROTECTED_PREFIX = "/v1"


def is_protected(path: str) -> bool:
    """Whether a route path (without the server's root path) needs the token."""
    return path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")


def bearer_matches(header: bytes | None, token: SecretStr | None) -> bool:
    """Whether ``header`` (the raw ``Authorization`` value) carries ``token``.
    No token configured means every request passes; a missing header never
    matches a configured token. The token is compared as UTF-8, the encoding a
    client's shell or library sends a non-ASCII value in."""
    if token is None:
        return True
    if header is None:
        return False
    expected = b"Bearer " + token.get_secret_value().encode("utf-8", "surrogateescape")
    return hmac.compare_digest(header, expected)
