"""API tokens, the pure part: scopes, names, expiry, secrets and their hashes.

A token is a random secret (``hf_`` and 43 URL-safe characters,
:func:`new_secret`) shown once when it is made; the catalog keeps only its
sha256 (:func:`hash_secret`) in a :class:`TokenRecord` with the token's name,
scopes, creator, creation time, last use and optional expiry. Scopes are
``read``, ``backup``, ``restore`` and ``admin``; ``admin`` implies every other
(:func:`grants`). Nothing here touches the catalog or HTTP: the use cases
(:mod:`service.usecases.tokens`) and the entry points build on these.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from backup.errors import InvalidInput
from backup.names import shown
from backup.types import isoformat


class Scope(StrEnum):
    READ = "read"
    BACKUP = "backup"
    RESTORE = "restore"
    ADMIN = "admin"


SCOPE_NAMES = tuple(str(scope) for scope in Scope)
TOKEN_PREFIX = "hf_"
"""Every secret starts so: a leaked one is recognisable (secret scanners, logs)."""
NAME_MAX = 64
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
NAME_PATTERN = f"^{_NAME.pattern}$"
"""A token name, as the OpenAPI document states it (JSON Schema ``pattern``)."""
_EXPIRY = re.compile(r"([0-9]{1,9})([mhd])")
_EXPIRY_UNITS = {"m": 60, "h": 3600, "d": 86400}
EXPIRY_MIN = 60
"""The shortest expiry, in seconds (``1m``)."""
EXPIRY_MAX = 3650 * 86400
"""The longest expiry, in seconds (``3650d``, about ten years)."""
EXPIRY_RANGE = "1m to 3650d"
TOUCH_INTERVAL = timedelta(minutes=1)
"""``last_used_at`` is written at most this often per token: not once per request."""


@dataclass(frozen=True)
class TokenRecord:
    """A token as the catalog keeps it: never the secret, only its sha256."""

    name: str
    token_hash: str
    scopes: tuple[str, ...]
    created_by: str | None
    created_at: datetime
    last_used_at: datetime | None = None
    expires_at: datetime | None = None

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def needs_touch(self, now: datetime) -> bool:
        """Whether a use at ``now`` should be written as its last use: the first
        use, or the first after :data:`TOUCH_INTERVAL` since the last one written."""
        return self.last_used_at is None or now - self.last_used_at >= TOUCH_INTERVAL

    def to_json(self) -> dict[str, Any]:
        """What listings show: everything but the hash."""
        return {"name": self.name, "scopes": list(self.scopes), "created_by": self.created_by,
                "created_at": isoformat(self.created_at),
                "last_used_at": isoformat(self.last_used_at),
                "expires_at": isoformat(self.expires_at)}


def check_name(name: str) -> str:
    """A token's name: 1-64 letters, digits, ``.``, ``_``, ``-``, starting with a
    letter or digit. Raises :class:`InvalidInput` with one line."""
    if not _NAME.fullmatch(name):
        raise InvalidInput(f"token name {shown(name)}: use 1 to {NAME_MAX} letters, digits, "
                           "'.', '_' or '-', starting with a letter or digit, as in ci-deploy")
    return name


def parse_scopes(values: Iterable[str]) -> tuple[str, ...]:
    """The scopes a user asked for, checked, without repeats, in the order of
    :class:`Scope`. At least one is needed. Raises :class:`InvalidInput`."""
    given = [value.strip().lower() for value in values]
    unknown = [value for value in given if value not in SCOPE_NAMES]
    if unknown:
        raise InvalidInput(f"unknown scope {shown(unknown[0])}: use one or more of "
                           f"{', '.join(SCOPE_NAMES)} (admin implies all)")
    if not given:
        raise InvalidInput(f"a token needs at least one scope: {', '.join(SCOPE_NAMES)}")
    return tuple(scope for scope in SCOPE_NAMES if scope in given)


def grants(scopes: Iterable[str], needed: str) -> bool:
    """Whether a token with ``scopes`` may do what needs ``needed``."""
    held = set(scopes)
    return Scope.ADMIN in held or needed in held


def parse_expiry(text: str) -> int:
    """An expiry such as ``30m``, ``12h`` or ``90d`` -> seconds, from 1m to
    3650d. Raises :class:`InvalidInput` with one line."""
    match = _EXPIRY.fullmatch(text.strip())
    seconds = int(match.group(1)) * _EXPIRY_UNITS[match.group(2)] if match else None
    if seconds is None or not EXPIRY_MIN <= seconds <= EXPIRY_MAX:
        raise InvalidInput(f"expires {shown(text.strip())} must be a duration from "
                           f"{EXPIRY_RANGE}, like 30m, 12h or 90d")
    return seconds


def expiry_time(text: str | None, now: datetime) -> datetime | None:
    """When a token made at ``now`` with expiry ``text`` (None: never) expires."""
    return None if text is None else now + timedelta(seconds=parse_expiry(text))


def new_secret() -> str:
    """A fresh secret: :data:`TOKEN_PREFIX` and 32 random bytes, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: bytes) -> str:
    """The sha256 hex the catalog stores (and looks a presented token up by).
    A hash of 256 random bits needs no salt or slow KDF: nothing can be guessed."""
    return hashlib.sha256(secret).hexdigest()


def bearer_secret(header: bytes | None) -> bytes | None:
    """The token in an ``Authorization`` header's raw bytes (``Bearer <token>``,
    the scheme in any case), or None when there is none."""
    if header is None:
        return None
    scheme, _, secret = header.strip().partition(b" ")
    secret = secret.strip()
    if scheme.lower() != b"bearer" or not secret:
        return None
    return secret
