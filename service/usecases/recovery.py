"""Start-up recovery: make the catalog and the targets agree after a crash.

Run by the daemon before it takes any work. A snapshot left ``running`` by a
process that is gone (SIGKILL, power loss) is marked ``failed`` with the reason
and its partial objects removed; temporary files of interrupted writes are
swept; helper containers of a killed process are removed; and a ``complete``
snapshot whose data object is missing or shorter than recorded is marked
``failed`` too, so the catalog never promises data it cannot deliver. The
staging container of a replace whose job did not finish (``NAME-restoring-<time>``,
known by Holdfast's labels on it) is removed with the volumes made for it, so
the next replace of ``NAME`` is not refused; so are the throwaway container,
volumes and network of a verified restore whose process is gone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from backup.errors import HoldfastError
from backup.labels import PREFIX, parse_bool
from backup.pipeline import data_object_problem, delete_snapshot_objects
from backup.types import Snapshot, SnapshotStatus, utcnow
from service.bootstrap import Services
from service.records import JobStatus, is_unclaimed_request
from service.runs import may_be_running
from service.usecases.replace import remove_staging_leftovers
from service.usecases.verification import remove_verification_leftovers

logger = logging.getLogger(__name__)


@dataclass
class RecoveryReport:
    interrupted: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    discarded: int = 0
    jobs: list[str] = field(default_factory=list)
    helpers: int = 0
    restarted: list[str] = field(default_factory=list)
    staging: list[str] = field(default_factory=list)
    """Staging containers of replaces that did not finish, removed."""
    verifications: list[str] = field(default_factory=list)
    """Containers, volumes and networks of verified restores that did not finish, removed."""


def _restart_if_stopped_for(svc: Services, snapshot: Snapshot, report: RecoveryReport) -> None:
    """A ``volume`` snapshot with ``holdfast.stop-during-backup`` stops its
    container and starts it in a ``finally``; a killed process never ran that.
    Start the container again if it stopped after the snapshot began and
    carries the label, so a crash does not leave an app down."""
    record = svc.catalog.get_instance(snapshot.instance)
    if record is None or not record.container_id:
        return
    if parse_bool(record.labels.get(PREFIX + "stop-during-backup", "")) is not True:
        return
    try:
        stopped_at = svc.docker.stopped_at(record.container_id)
        if stopped_at is None or stopped_at < snapshot.created_at:
            return  # running, or stopped before the snapshot: not ours to start
        svc.docker.start(record.container_id)
    except HoldfastError as exc:
        logger.error("container %s was stopped for interrupted snapshot %s and cannot be "
                     "started again: %s", record.container_name, snapshot.id, exc)
        return
    report.restarted.append(record.container_name or record.container_id)
    logger.warning("started container %s again: interrupted snapshot %s had stopped it",
                   record.container_name, snapshot.id,
                   extra={"instance": snapshot.instance, "snapshot": snapshot.id})


def recover(svc: Services) -> RecoveryReport:
    """Bring the catalog and the targets back in line after a crash (see the module)."""
    report = RecoveryReport()
    _fail_dead_jobs(svc, report)
    try:
        report.helpers = len(svc.docker.remove_orphan_helpers())
    except HoldfastError as exc:
        logger.error("could not remove leftover helper containers: %s", exc)
    try:  # after the jobs: a staging container of a job now failed is a leftover
        report.staging = remove_staging_leftovers(svc)
    except HoldfastError as exc:
        logger.error("could not remove leftover staging containers: %s", exc)
    try:
        report.verifications = remove_verification_leftovers(svc)
    except HoldfastError as exc:
        logger.error("could not remove what interrupted verified restores left: %s", exc)
    busy_targets = _fail_interrupted_snapshots(svc, report)
    for target_name in sorted(svc.settings.targets):
        _check_target(svc, target_name, sweep=target_name not in busy_targets, report=report)
    return report


def _fail_dead_jobs(svc: Services, report: RecoveryReport) -> None:
    # Jobs live only in the daemon that runs them, and one daemon runs per host:
    # any job of this host still queued or running was its previous daemon's.
    # Other hosts' jobs are theirs; a request queued here and not yet claimed
    # waits for this daemon's claims.
    host = svc.host_name()
    for job in svc.catalog.list_jobs(limit=100_000,
                                     statuses=(JobStatus.QUEUED, JobStatus.RUNNING)):
        if job.host not in (None, host) or is_unclaimed_request(job):
            continue
        svc.catalog.save_job(replace(
            job, status=JobStatus.FAILED, finished_at=utcnow(),
            error="interrupted: the Holdfast daemon stopped before the job finished"))
        report.jobs.append(job.id)


def _fail_interrupted_snapshots(svc: Services, report: RecoveryReport) -> set[str]:
    """Mark failed (and clean up) the running snapshots whose process is gone;
    return the targets that a live process is still writing to."""
    busy_targets: set[str] = set()
    for snapshot in svc.catalog.list_snapshots(status=SnapshotStatus.RUNNING):
        if may_be_running(snapshot.runner):
            busy_targets.add(snapshot.target)
            continue
        context = {"instance": snapshot.instance, "snapshot": snapshot.id}
        try:
            delete_snapshot_objects(svc.target(snapshot.target), [(snapshot.instance, snapshot.id)])
        except HoldfastError as exc:
            logger.error("could not remove the leftovers of %s: %s", snapshot.id, exc,
                         extra=context)
        # Not pinned once failed (a backup --pin's row is pinned from its first
        # write): only complete snapshots are, as for a backup that fails.
        svc.catalog.save_snapshot(snapshot.with_changes(
            status=SnapshotStatus.FAILED, finished_at=utcnow(), runner=None, pinned=False,
            error="interrupted: the Holdfast process writing it stopped before it finished",
        ))
        report.interrupted.append(snapshot.id)
        if snapshot.engine == "volume":
            _restart_if_stopped_for(svc, snapshot, report)
        logger.warning("snapshot %s was interrupted; marked failed", snapshot.id, extra=context)
    return busy_targets


def _check_target(svc: Services, target_name: str, *, sweep: bool,
                  report: RecoveryReport) -> None:
    """Sweep what interrupted writes left (only if no live process writes there)
    and mark failed every complete snapshot whose data object is missing or short."""
    try:
        storage = svc.target(target_name)
        if sweep:
            report.discarded += storage.discard_incomplete()
        sizes = {info.key: info.size for info in storage.list()}
    except HoldfastError as exc:
        logger.error("target %s cannot be checked at start-up: %s", target_name, exc,
                     extra={"target": target_name})
        return
    for snapshot in svc.catalog.list_snapshots(status=SnapshotStatus.COMPLETE):
        if snapshot.target != target_name:
            continue
        problem = data_object_problem(sizes.get(snapshot.data_key), snapshot.size_bytes)
        if problem is None:
            continue
        try:
            delete_snapshot_objects(storage, [(snapshot.instance, snapshot.id)])
        except HoldfastError as exc:
            logger.error("could not remove the remains of %s: %s", snapshot.id, exc)
        svc.catalog.save_snapshot(snapshot.with_changes(
            status=SnapshotStatus.FAILED, pinned=False,  # nothing left to keep
            error=f"data object {problem} in target {target_name} at start-up",
        ))
        report.broken.append(snapshot.id)
        logger.error("snapshot %s: data object %s; marked failed", snapshot.id, problem,
                     extra={"instance": snapshot.instance, "snapshot": snapshot.id})
