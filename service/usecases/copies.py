"""Use cases for copies: the containers restores created, listed, given more time, reaped.

Every container a restore creates is recorded (:func:`record_copy`) with the
volumes that restore created, so the daemon can remove it when its TTL passes
and never anything else. :func:`reap_expired_copies` is "decide, then apply":
it gathers what the engine says now of each expired copy (who holds its
name, where its volumes came from), lets :func:`restore.copies.decide_expiry`
choose, then removes; a removal that fails is recorded on the copy and retried
at the next sweep, and never stops the others. What happened is recorded on
the copy's row (``removed_at``, ``removal_error``) and, for a restore that ran
as a job, in that job's result under ``expired``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from backup.errors import CopyNotFound, DockerUnavailable, HoldfastError, NotFound
from backup.types import isoformat, utcnow
from restore.copies import CopyRecord, Expiry, decide_expiry, expiry_after, is_expired, parse_ttl
from restore.planner import RESTORED_FROM_LABEL
from service.bootstrap import Services

logger = logging.getLogger(__name__)


def record_copy(svc: Services, copy: CopyRecord) -> CopyRecord:
    """Record ``copy``. A live copy of the same name recorded before is over:
    its container is gone, since the restore could take the name; it is marked
    removed (superseded), and nothing of it is touched."""
    for older in svc.catalog.live_copies(copy.name):
        if older.container_id != copy.container_id:
            svc.catalog.save_copy(replace(
                older, removed_at=copy.created_at,
                removal_error=f"superseded: its container was gone and a restore made a new "
                              f"{copy.name}; nothing of the old copy was removed"))
    svc.catalog.add_copy(copy)
    return copy


def list_copies(svc: Services) -> list[CopyRecord]:
    """Live copies (not yet removed), newest first."""
    return svc.catalog.live_copies()


def get_copy(svc: Services, name: str) -> CopyRecord:
    found = svc.catalog.live_copies(name)
    if not found:
        raise CopyNotFound(f"no live copy named {name!r}; 'holdfast copies ls' lists them")
    return found[0]


def extend_copy(svc: Services, name: str, ttl: str, now: datetime | None = None) -> CopyRecord:
    """Set the live copy ``name`` to expire ``ttl`` (1m to 365d) from ``now``,
    whether it had a TTL or not, sooner or later than before."""
    seconds = parse_ttl(ttl)
    copy = get_copy(svc, name)
    extended = replace(copy, expires_at=expiry_after(now or utcnow(), seconds))
    svc.catalog.save_copy(extended)
    logger.info("copy %s now expires at %s", name, isoformat(extended.expires_at))
    return extended


@dataclass(frozen=True)
class Reaped:
    """What one sweep did to one expired copy."""

    copy: CopyRecord
    container_removed: bool
    volumes_removed: tuple[str, ...]
    error: str | None

    @property
    def done(self) -> bool:
        """The daemon is through with the copy (removed, or refused for good)."""
        return self.copy.removed_at is not None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.copy.name, "container_id": self.copy.container_id,
                "container_removed": self.container_removed,
                "volumes_removed": list(self.volumes_removed), "error": self.error,
                "removed_at": isoformat(self.copy.removed_at)}


def reap_expired_copies(svc: Services, now: datetime | None = None) -> list[Reaped]:
    """Remove every live copy whose TTL has passed by ``now``: its container
    (only if the container of its name still has the recorded id) and the
    volumes it created. Returns what was done, one entry per expired copy."""
    moment = now or utcnow()
    expired = [copy for copy in svc.catalog.live_copies() if is_expired(copy, moment)]
    holders: dict[str, str | None] = {}
    origins: dict[str, str | None] = {}
    reachable: list[CopyRecord] = []
    for copy in expired:
        try:
            holders[copy.name] = _holder(svc, copy.name)
            for volume in copy.volumes:
                info = svc.docker.get_volume(volume)
                if info is not None:
                    origins[volume] = info.labels.get(RESTORED_FROM_LABEL)
        except DockerUnavailable as exc:
            logger.warning("cannot check expired copy %s now: %s", copy.name, exc)
            continue
        reachable.append(copy)
    return [_apply(svc, expiry, moment) for expiry in decide_expiry(reachable, moment,
                                                                    holders, origins)]


def _holder(svc: Services, name: str) -> str | None:
    """The id of the container named ``name`` now, if any (the engine also
    resolves id prefixes: a container found that way is not of that name)."""
    try:
        found = svc.docker.inspect(name)
    except NotFound:
        return None
    return found.id if found.name == name else None


def _apply(svc: Services, expiry: Expiry, now: datetime) -> Reaped:
    copy, removed, volumes_removed, error = expiry.copy, False, [], expiry.refused
    if expiry.refused is None:
        try:
            if expiry.container_id is not None:
                svc.docker.remove_container(expiry.container_id)
                removed = True
            for volume in expiry.volumes:
                svc.docker.remove_volume(volume)
                volumes_removed.append(volume)
        except HoldfastError as exc:  # recorded; retried at the next sweep
            error = f"removal failed, retried at the next sweep: {exc}"
    final = expiry.refused is not None or error is None
    if error is None and expiry.foreign:
        error = (f"volume {', '.join(expiry.foreign)} no longer says it was restored from "
                 f"{copy.snapshot_id} (re-created since?); left alone")
    updated = replace(copy, removed_at=now if final else None, removal_error=error)
    if error != copy.removal_error or final:
        svc.catalog.save_copy(updated)
        log = logger.info if error is None else logger.warning
        log("expired copy %s: %s", copy.name, error or "container and volumes removed")
    reaped = Reaped(updated, removed, tuple(volumes_removed), error)
    if final:
        _record_on_job(svc, reaped)
    return reaped


def _record_on_job(svc: Services, reaped: Reaped) -> None:
    job_id = reaped.copy.job_id
    job = svc.catalog.get_job(job_id) if job_id else None
    if job is None:
        return
    try:
        svc.catalog.save_job(replace(job, result={**(job.result or {}),
                                                  "expired": reaped.to_json()}))
    except HoldfastError as exc:  # the copy's row has it already
        logger.warning("could not record the expiry of %s on job %s: %s",
                       reaped.copy.name, job_id, exc)
