"""What the daemon's schedules fire: a backup of an instance, or a verified
restore of its newest complete snapshot, each handed to the job runner.

Kept apart from :mod:`service.usecases.jobs` (the runner itself) so the
scheduler's calls read as what they do. Every fire first claims its slot in the
catalog (:func:`claim_scheduled_slot`): of the daemons sharing a catalog that
see the same instance, one runs each scheduled time and the others skip it. A
run already in progress skips the new one; a check that fails is logged as an
error for that instance alone.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from backup.errors import HoldfastError
from backup.types import SnapshotStatus, isoformat, utcnow
from service.adapters.catalog.urls import CatalogUnavailable
from service.bootstrap import Services
from service.records import JobRecord
from service.runs import AlreadyRunning
from service.usecases.backups import prepare_backup_for
from service.usecases.instances import Instance
from service.usecases.jobs import JobRunner
from service.usecases.schedules import slot_of
from service.usecases.verification import prepare_verified_restore

logger = logging.getLogger(__name__)

SLOT_RETENTION = timedelta(days=7)
"""How long a claimed slot is kept: far longer than any daemon runs late or
catches up (catch-up claims the latest slot only), so pruning never lets one
run twice."""

_WHAT = {"backup": "scheduled backup", "verify": "scheduled verified restore"}


def claim_scheduled_slot(svc: Services, instance: str, kind: str,
                         schedule: str | None) -> datetime | None:
    """Claim, for this daemon's host, the slot (:func:`slot_of` now) of the
    scheduled run of ``kind`` (``backup`` or ``verify``) of ``instance``: the
    slot when this daemon is to run it, None when it must not. A slot another
    daemon took is logged (info); no schedule, one that does not compute, or a
    catalog that cannot be reached is logged as an error: never run unclaimed,
    or an outage would run the slot on every daemon."""
    what = _WHAT[kind]
    extra = {"instance": instance}
    try:
        slot = slot_of(schedule, utcnow()) if schedule else None
    except (ArithmeticError, ValueError) as exc:  # this schedule's, not the others'
        logger.error("%s of %s skipped: its schedule %r has no slot: %s", what, instance,
                     schedule, exc, extra=extra)
        return None
    if slot is None:
        logger.error("%s of %s skipped: its schedule %r names no slot to claim", what,
                     instance, schedule, extra=extra)
        return None
    try:
        won = svc.catalog.claim_slot(instance, kind, slot, svc.host_name(), utcnow())
    except CatalogUnavailable as exc:
        logger.error("%s of %s for %s skipped: its slot cannot be claimed: %s", what,
                     instance, isoformat(slot), exc, extra=extra)
        return None
    if not won:
        logger.info("%s of %s for %s already taken by another daemon; skipped", what,
                    instance, isoformat(slot), extra=extra)
        return None
    return slot


def start_scheduled_verification(svc: Services, jobs: JobRunner, instance: Instance) -> None:
    """The scheduled verified restore of ``instance`` (on ``holdfast.verify``):
    once its slot is claimed (:func:`claim_scheduled_slot`), of its newest
    complete snapshot; none yet is logged and skipped."""
    name = instance.name
    if claim_scheduled_slot(svc, name, "verify", instance.policy.verify) is None:
        return
    complete = svc.catalog.list_snapshots(instance=name, status=SnapshotStatus.COMPLETE)
    if not complete:
        logger.info("scheduled verified restore of %s skipped: it has no complete snapshot yet",
                    name, extra={"instance": name})
        return
    start_verified_restore(svc, jobs, complete[0].id, trigger="schedule")


def start_scheduled_backup(svc: Services, jobs: JobRunner,
                           instance: Instance) -> JobRecord | None:
    """Queue the scheduled backup of ``instance`` (on ``holdfast.schedule``),
    once its slot is claimed (:func:`claim_scheduled_slot`; a slot not won
    queues nothing). A run already in progress skips this one; a check that
    fails (container stopped, labels, target) is logged as an error and
    reported as a failed backup. Returns the job, or None when nothing was
    queued."""
    name = instance.name
    if claim_scheduled_slot(svc, name, "backup", instance.policy.schedule) is None:
        return None
    try:
        request = prepare_backup_for(svc, instance)
        job = jobs.submit_backup(request, trigger="schedule")
    except AlreadyRunning as exc:
        logger.info("scheduled backup of %s skipped: %s", name, exc, extra={"instance": name})
        return None
    except HoldfastError as exc:
        logger.error("scheduled backup of %s cannot start: %s", name, exc,
                     extra={"instance": name})
        jobs.alerts.backup_finished(name, job=None, snapshot=None,
                                    error=f"scheduled backup of {name} cannot start: {exc}")
        return None
    logger.info("scheduled backup of %s queued as %s", name, job.id,
                extra={"instance": name, "job": job.id})
    return job


def prune_slots(svc: Services) -> int:
    """Forget the slots claimed more than :data:`SLOT_RETENTION` ago; how many
    (0 when the catalog cannot say: the next prune tries again). Logged at debug."""
    before = utcnow() - SLOT_RETENTION
    try:
        pruned = svc.catalog.prune_slots(before)
    except CatalogUnavailable as exc:
        logger.debug("schedule slots claimed before %s not pruned: %s", isoformat(before), exc)
        return 0
    logger.debug("pruned %d schedule slots claimed before %s", pruned, isoformat(before))
    return pruned


def start_verified_restore(svc: Services, jobs: JobRunner, snapshot_id: str, *,
                           trigger: str) -> JobRecord | None:
    """Queue a verified restore of ``snapshot_id`` for the daemon (``trigger``:
    ``schedule`` or ``after-backup``). One of the instance already queued or
    running skips this one; a check that fails (no identity for an encrypted
    snapshot, the image gone) is logged as an error and counted as an
    ``error`` verification. Returns the job, or None when nothing was queued."""
    try:
        request = prepare_verified_restore(svc, snapshot_id)
        return jobs.submit_verified_restore(request, trigger=trigger)
    except AlreadyRunning as exc:
        logger.info("%s verified restore of %s skipped: %s", trigger, snapshot_id, exc,
                    extra={"snapshot": snapshot_id})
    except HoldfastError as exc:
        snapshot = svc.catalog.get_snapshot(snapshot_id)
        instance = snapshot.instance if snapshot else "?"
        jobs.observe_verification_error(instance, snapshot_id, str(exc))
        logger.error("%s verified restore of %s cannot start: %s", trigger, snapshot_id, exc,
                     extra={"snapshot": snapshot_id, "instance": instance})
    return None
