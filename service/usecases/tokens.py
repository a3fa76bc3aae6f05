"""Use cases for API tokens: create, list, revoke, and authenticate a request.

A token's secret is made and shown once by :func:`create_token`; the catalog
keeps only its sha256. :func:`authenticate` turns the ``Authorization`` header
of a request into a :class:`Principal` (who is asking, with which scopes):
``HOLDFAST_API_TOKEN`` is a bootstrap admin token, compared in constant time
without touching the catalog; any other token is hashed and looked up. A use
is written to the token's ``last_used_at`` at most once a minute
(:data:`~service.tokens.TOUCH_INTERVAL`), not on every request. A refused
token never reaches a log line; when the token is known (an expired one) its
name does. With ``HOLDFAST_API_INSECURE_NO_AUTH`` every request is admin.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backup.errors import Forbidden, InvalidInput, TokenNotFound, Unauthorised
from backup.types import isoformat
from service.bootstrap import Services
from service.tokens import (
    Scope,
    TokenRecord,
    bearer_secret,
    check_name,
    expiry_time,
    grants,
    hash_secret,
    new_secret,
    parse_scopes,
)

logger = logging.getLogger(__name__)

UNAUTHORISED_MESSAGE = (
    "missing or invalid bearer token; send 'Authorization: Bearer <token>' with a token "
    "made by `holdfast tokens create --name NAME --scope admin` on the daemon's host "
    "(or the daemon's HOLDFAST_API_TOKEN)")
BOOTSTRAP_NAME = "HOLDFAST_API_TOKEN"
"""The principal's name for the bootstrap token (no catalog token may be named so)."""
INSECURE_NAME = "insecure-no-auth"


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: a token's name and its scopes."""

    name: str
    scopes: tuple[str, ...]

    def require(self, needed: str) -> None:
        """Return if this principal may do what needs ``needed``; else raise
        :class:`Forbidden` naming the scope."""
        if not grants(self.scopes, needed):
            needed = str(needed)
            either = needed if needed == Scope.ADMIN else f"{needed} or admin"
            raise Forbidden(f"this needs the {needed!r} scope, which token {self.name!r} lacks "
                            f"(it has {', '.join(self.scopes)}); use a token with {either} "
                            f"(holdfast tokens create --scope {needed})", needed)


ADMIN_SCOPES = (str(Scope.ADMIN),)


@dataclass(frozen=True)
class CreatedToken:
    """A token just made: its record and its secret, which is shown only here."""

    record: TokenRecord
    secret: str

    def to_json(self) -> dict[str, Any]:
        """``{"name", "scopes", "expires_at", "token"}``: the API's 201 and
        ``holdfast tokens create --json``."""
        return {"name": self.record.name, "scopes": list(self.record.scopes),
                "expires_at": isoformat(self.record.expires_at), "token": self.secret}


def create_token(svc: Services, name: str, scopes: Iterable[str], expires: str | None,
                 created_by: str | None, now: datetime) -> CreatedToken:
    """Make a token ``name`` with ``scopes``, expiring ``expires`` after ``now``
    (``90d``, ``12h``, ``30m``; None: never). Raises :class:`~backup.errors.InvalidInput`
    for a bad name, scope or expiry and :class:`~backup.errors.NameTaken` for a
    name in use."""
    if check_name(name) in (BOOTSTRAP_NAME, INSECURE_NAME):
        raise InvalidInput(f"the token name {name!r} is reserved; choose another")
    secret = new_secret()
    record = TokenRecord(name=name, token_hash=hash_secret(secret.encode()),
                         scopes=parse_scopes(scopes), created_by=created_by, created_at=now,
                         expires_at=expiry_time(expires, now))
    svc.catalog.add_token(record)
    logger.info("API token %r created with scopes %s%s", name, ", ".join(record.scopes),
                f", expiring at {isoformat(record.expires_at)}" if record.expires_at else "")
    return CreatedToken(record=record, secret=secret)


def list_tokens(svc: Services) -> list[TokenRecord]:
    """Every token by name, expired ones included (never a secret)."""
    return svc.catalog.list_tokens()


def revoke_token(svc: Services, name: str) -> None:
    """Remove the token ``name``: the next request with it is refused.
    Raises :class:`TokenNotFound`."""
    if not svc.catalog.delete_token(name):
        raise TokenNotFound(f"no API token named {name[:80]!r}; holdfast tokens ls lists them")
    logger.info("API token %r revoked", name)


def authenticate(svc: Services, header: bytes | None, now: datetime) -> Principal:
    """The principal of a request whose ``Authorization`` header is ``header``
    (the client's raw bytes, None when absent). Raises :class:`Unauthorised`
    for no token, an unknown one or an expired one."""
    settings = svc.settings
    if settings.api_insecure_no_auth:
        return Principal(INSECURE_NAME, ADMIN_SCOPES)
    secret = bearer_secret(header)
    if secret is None:
        raise Unauthorised(UNAUTHORISED_MESSAGE)
    if settings.api_token is not None:
        bootstrap = settings.api_token.get_secret_value().encode("utf-8", "surrogateescape")
        if hmac.compare_digest(secret, bootstrap):
            return Principal(BOOTSTRAP_NAME, ADMIN_SCOPES)
    digest = hash_secret(secret)
    record = svc.catalog.token_by_hash(digest)
    # The lookup is by an index on the hash; comparing again in constant time
    # keeps the decision itself free of a short-circuiting string comparison.
    if record is None or not hmac.compare_digest(record.token_hash, digest):
        logger.info("API request refused: a bearer token that is not known")
        raise Unauthorised(UNAUTHORISED_MESSAGE)
    if record.is_expired(now):
        logger.warning("API request refused: token %r expired at %s", record.name,
                       isoformat(record.expires_at))
        raise Unauthorised(f"token {record.name!r} expired at {isoformat(record.expires_at)}; "
                           "make a new one with holdfast tokens create")
    if record.needs_touch(now):
        svc.catalog.touch_token(record.name, now)
    return Principal(record.name, record.scopes)
