"""Who is signed in to the dashboard, and the checks that keep its forms safe.

Signing in posts an API token through a password field; the token is then
kept in an HttpOnly, SameSite=Strict cookie scoped to ``/ui`` (never in a URL,
never readable by scripts) and authenticated on every request exactly as the
API's bearer header is. Every state-changing request must also carry the
session's CSRF token (a hidden field or the ``X-CSRF-Token`` header htmx
sends), an HMAC of the cookie under a key made when the dashboard starts, and
must not come from another origin (``Origin`` and ``Sec-Fetch-Site``). The
sign-in form itself is guarded by a double-submit cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from fastapi import Request, Response

from backup.errors import Forbidden, Unauthorised
from backup.types import utcnow
from service.bootstrap import Services
from service.tokens import Scope, grants
from service.usecases import tokens
from service.usecases.tokens import Principal

TOKEN_COOKIE = "holdfast_session"
LOGIN_COOKIE = "holdfast_login"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"
COOKIE_PATH = "/ui"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Session:
    """The signed-in principal, what it may do, and its CSRF token."""

    principal: Principal
    csrf: str

    def can(self, scope: str) -> bool:
        return grants(self.principal.scopes, scope)

    @property
    def allowed(self) -> dict[str, bool]:
        """Each scope's name -> whether this session holds it (for the templates)."""
        return {str(scope): self.can(scope) for scope in Scope}


@dataclass
class SessionKeys:
    """The dashboard's CSRF key: random per process (a restart asks pages to reload)."""

    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def csrf_for(self, secret: str) -> str:
        digest = hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()
        return hmac.new(self.key, digest, hashlib.sha256).hexdigest()


def session_of(request: Request, svc: Services, keys: SessionKeys) -> Session:
    """The request's session; :class:`~backup.errors.Unauthorised` when it has
    none (no cookie, or a token that is unknown or expired), and for an unsafe
    method :class:`~backup.errors.Forbidden` unless it passes the CSRF checks."""
    secret = request.cookies.get(TOKEN_COOKIE, "")
    header = f"Bearer {secret}".encode("utf-8", "surrogateescape") if secret else None
    principal = tokens.authenticate(svc, header, utcnow())
    session = Session(principal=principal, csrf=keys.csrf_for(secret))
    if request.method not in _SAFE_METHODS:
        check_same_origin(request)
        sent = request.headers.get(CSRF_HEADER) or request.state.form.get(CSRF_FIELD, "")
        if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise Forbidden("this form is out of date or came from another site; "
                            "reload the page and try again")
    return session


def check_same_origin(request: Request) -> None:
    """Refuse a request a browser says came from another site."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.url.netloc}"
    if (site is not None and site not in ("same-origin", "none")) or \
            (origin is not None and origin != own):
        raise Forbidden("a request from another site was refused; use the dashboard itself")


def sign_in(request: Request, svc: Services, secret: str, login_nonce: str,
            response: Response) -> Principal:
    """Check the sign-in form (its double-submit nonce, then the token) and set
    the session cookie on ``response``. Raises Forbidden or Unauthorised."""
    check_same_origin(request)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), login_nonce.encode()):
        raise Forbidden("the sign-in form is out of date; reload the page and sign in again")
    if not secret:
        raise Unauthorised("paste an API token (holdfast tokens create) to sign in")
    principal = tokens.authenticate(svc, f"Bearer {secret}".encode("utf-8", "surrogateescape"),
                                    utcnow())
    set_cookie(request, response, TOKEN_COOKIE, secret)
    response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
    return principal


def new_login_nonce(request: Request, response: Response) -> str:
    """A fresh double-submit nonce for the sign-in form, set as its cookie."""
    nonce = secrets.token_urlsafe(24)
    set_cookie(request, response, LOGIN_COOKIE, nonce)
    return nonce


def set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(name, value, path=COOKIE_PATH, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


def sign_out(response: Response) -> None:
    response.delete_cookie(TOKEN_COOKIE, path=COOKIE_PATH)
