"""The API's outer guard: the bearer token before any body is read, then a body cap.

A pure ASGI middleware, so it runs before FastAPI reads and parses anything:

1. a request to ``/v1…`` without a valid token (see
   :mod:`~service.entrypoints.api.auth`) is answered 401 at once, and not one
   chunk of its body is asked for; a valid one's principal is left in the
   scope for the route's scope check (the lookup of a catalog token runs in a
   worker thread: the catalog is synchronous);
2. a declared ``Content-Length`` over :data:`MAX_BODY_BYTES` is answered 413
   at once, again unread;
3. otherwise the body is read, counted chunk by chunk (a chunked upload
   declares no length), and answered 413 as soon as it passes the cap; a body
   within it is handed on to the app whole, so the app never holds more than
   the cap of any one request.

Every answer here is the API's one error shape. Refusing a request whose body
was not read ends the connection (``Connection: close``): the unread rest
cannot be left for the next request on it.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backup.errors import HoldfastError, Unauthorised
from service.entrypoints.api.auth import (
    PRINCIPAL_KEY,
    UNAUTHORISED_HEADERS,
    authorization_header,
    is_protected,
)
from service.entrypoints.api.problems import error_response
from service.entrypoints.error_table import http_status_for
from service.usecases.tokens import Principal

MAX_BODY_BYTES = 256 * 1024
"""The largest request body the API takes (256 KiB): its largest real body, a
policy or a volume's labels, is a few KiB."""


class RequestGuard:
    """Authentication before the body, then the body cap; see the module's text."""

    def __init__(self, app: ASGIApp, authenticate: Callable[[bytes | None], Principal],
                 max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.authenticate = authenticate
        """The raw ``Authorization`` header (None: none) -> the principal, or
        :class:`~backup.errors.Unauthorised`."""
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if is_protected(_route_path(scope)) and not await self._authenticated(scope, send):
            return
        declared = _header(scope, b"content-length")
        if declared is not None and not (declared.isdigit() and declared.isascii()):
            await _refuse(scope, send, 400, "Content-Length is not a whole number of bytes",
                          "InvalidInput")
            return
        if declared is not None and int(declared) > self.max_body:
            await self._too_large(scope, send)
            return
        body = await self._read_body(scope, receive, send)
        if body is not None:
            await self.app(scope, _replay(body, receive), send)

    async def _authenticated(self, scope: Scope, send: Send) -> bool:
        """Leave the request's principal in ``scope`` and say True; or answer
        (401, or 503 when the catalog cannot be asked) and say False."""
        try:
            scope[PRINCIPAL_KEY] = await run_in_threadpool(
                self.authenticate, authorization_header(scope))
        except Unauthorised as refused:
            await _refuse(scope, send, 401, str(refused), "Unauthorised", UNAUTHORISED_HEADERS)
            return False
        except HoldfastError as failed:
            await _refuse(scope, send, http_status_for(failed), str(failed),
                          type(failed).__name__)
            return False
        return True

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body; or None, answered 413 as soon as it passes the cap, or
        unanswered if the client left part way (a half-sent request must not
        start anything, and nobody is left to read an answer)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._too_large(scope, send)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        await _refuse(scope, send, 413, f"the request body is over the API's limit of "
                      f"{self.max_body} bytes ({self.max_body // 1024} KiB); send a smaller "
                      "one (no route takes more than a few KiB)", "BodyTooLarge")


async def _refuse(scope: Scope, send: Send, status: int, message: str, kind: str,
                  headers: dict[str, str] | None = None) -> None:
    response = error_response(status, message, kind,
                              headers={**(headers or {}), "Connection": "close"})
    await response(scope, _no_body, send)


async def _no_body() -> Message:
    """The ``receive`` a refusal gets: it must never read the refused body."""
    return {"type": "http.disconnect"}


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the body read here, then the client's
    own messages (a disconnect, for a route that waits for one)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower case), as the client's bytes."""
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


def _route_path(scope: Scope) -> str:
    """The path the router matches: the request path less the server's root path
    (as :func:`starlette._utils.get_route_path` computes it)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root):]
    return path
