"""Idempotency keys: a retried backup or restore request returns the job the
first one started, never a second dump or restore.

A client sends ``Idempotency-Key: <1 to 255 printable ASCII characters>``. The
job records the key and a fingerprint of the request (sha256 of its kind, the
path it targets and its body as canonical JSON, defaults filled in, so ``{}``
and no body are one request). A later request with the same key and the same
fingerprint gets that job; with another fingerprint it is refused (409) naming
the key. Keys live as long as their job rows. Which of two concurrent requests
with one key wins is decided by the unique index on ``jobs.idempotency_key``
(and, within one process, by a lock per key, so the loser never runs the
request's checks against a half-started job).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from backup.errors import Conflict, InvalidInput
from service.ports import CatalogPort
from service.records import JobRecord

MAX_KEY_LENGTH = 255
_KEY = re.compile(rf"[\x20-\x7e]{{1,{MAX_KEY_LENGTH}}}")
KEY_PATTERN = f"^{_KEY.pattern}$"
"""An Idempotency-Key, as the OpenAPI document states it (JSON Schema ``pattern``)."""


class InvalidIdempotencyKey(InvalidInput):
    """An ``Idempotency-Key`` header that is empty, too long or not printable ASCII."""


class IdempotencyKeyReused(Conflict):
    """A key already used for a different request."""


@dataclass(frozen=True)
class Idempotency:
    """A request's key and fingerprint."""

    key: str
    fingerprint: str


def fingerprint(kind: str, target: str, body: Mapping[str, Any] | None) -> str:
    """sha256 of ``kind``, ``target`` (the path's subject) and ``body`` as
    canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps([kind, target, dict(body or {})], sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_for(key: str | None, kind: str, target: str,
                    body: Mapping[str, Any] | None) -> Idempotency | None:
    """The request's :class:`Idempotency`, or None without a key.
    Raises :class:`InvalidIdempotencyKey` for a key out of bounds."""
    if key is None:
        return None
    if not _KEY.fullmatch(key) or not key.strip():
        raise InvalidIdempotencyKey(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters "
            "(a UUID will do)")
    return Idempotency(key=key, fingerprint=fingerprint(kind, target, body))


def existing_job(catalog: CatalogPort, idem: Idempotency) -> JobRecord | None:
    """The job an earlier request with this key started, if any; raises
    :class:`IdempotencyKeyReused` if that request was a different one."""
    job = catalog.job_with_idempotency_key(idem.key)
    if job is None:
        return None
    if job.request_fingerprint != idem.fingerprint:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {idem.key[:64]!r} was used for a different request (job "
            f"{job.id}); send a new key for a new request")
    return job
