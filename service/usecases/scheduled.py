"""What the daemon's schedules fire: a backup of an instance, or a verified
restore of its newest complete snapshot, each handed to the job runner.

Kept apart from :mod:`service.usecases.jobs` (the runner itself) so the
scheduler's calls read as what they do. A run already in progress skips the
new one; a check that fails is logged as an error for that instance alone.
"""

from __future__ import annotations

import logging

from backup.errors import HoldfastError
from backup.types import SnapshotStatus
from service.bootstrap import Services
from service.records import JobRecord
from service.runs import AlreadyRunning
from service.usecases.backups import prepare_backup_for
from service.usecases.instances import Instance
from service.usecases.jobs import JobRunner, start_verified_restore

logger = logging.getLogger(__name__)


def start_scheduled_verification(svc: Services, jobs: JobRunner, instance: str) -> None:
    """The scheduled verified restore of ``instance``: of its newest complete
    snapshot; none yet is logged and skipped."""
    complete = svc.catalog.list_snapshots(instance=instance, status=SnapshotStatus.COMPLETE)
    if not complete:
        logger.info("scheduled verified restore of %s skipped: it has no complete snapshot yet",
                    instance, extra={"instance": instance})
        return
    start_verified_restore(svc, jobs, complete[0].id, trigger="schedule")


def start_scheduled_backup(svc: Services, jobs: JobRunner,
                           instance: Instance) -> JobRecord | None:
    """Queue the scheduled backup of ``instance``. A run already in progress
    skips this one; a check that fails (container stopped, labels, target) is
    logged as an error and reported as a failed backup. Returns the job, or
    None when nothing was queued."""
    name = instance.name
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
