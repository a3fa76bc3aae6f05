"""Use cases for backups: check a request, take the snapshot, apply retention.

:func:`prepare_backup` does every check that can fail on bad input (instance,
container state, labels, engine, credentials, target) before anything is
written; :func:`execute_backup` then records the instance and a ``running``
snapshot, streams the dump into the target and marks the snapshot
``complete`` or ``failed``, so the catalog never shows a snapshot it does not
have.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from backup.cancel import BY_REQUEST, requested
from backup.encryption import FORMAT as ENCRYPTION_FORMAT
from backup.encryption import Recipients, encrypt_label_problem
from backup.engines import Engine, get_engine, has_physical_mode
from backup.errors import (
    Cancelled,
    Conflict,
    ContainerNotRunning,
    InvalidLabels,
    UnsupportedEngine,
)
from backup.labels import mode_problem
from backup.phases import PhaseCallback, no_phases
from backup.pipeline import (
    data_key,
    new_snapshot_id,
    take_snapshot,
)
from backup.storage import Storage
from backup.streams import ProgressCallback
from backup.tags import check_tags
from backup.types import (
    DatabaseContainer,
    Snapshot,
    SnapshotStatus,
    utcnow,
)
from service.bootstrap import Services
from service.runs import AlreadyRunning, current_runner, may_be_running
from service.usecases.instances import Instance, effective_labels, find_instance, record_instances
from service.usecases.retention import PruneResult, apply_retention

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackupRequest:
    """A checked backup, ready to run: what :func:`prepare_backup` returns."""

    source: Instance
    instance: str
    container: DatabaseContainer
    engine: Engine
    storage: Storage
    databases: tuple[str, ...]
    tags: Mapping[str, str] = field(default_factory=dict)
    """User tags for the snapshot, checked (:func:`backup.tags.check_tags`)."""
    pin: bool = False
    """Pin the snapshot from its first write: retention never removes it."""
    recipients: Recipients | None = None
    """The target's age recipients: the snapshot is stored encrypted to them."""


def prepare_backup(svc: Services, name: str, target: str | None = None,
                   tags: Mapping[str, str] | None = None, pin: bool = False) -> BackupRequest:
    """Every check a backup can fail on bad input, before anything is written;
    ``tags`` and ``pin`` go into the snapshot's row and manifest."""
    checked = check_tags(tags)  # bad tags are refused before the instance is looked up
    # A run holding the instance is 409 first: a replace may have its container
    # stopped or renamed aside, which would otherwise read as 409 or 404 for that.
    svc.gate.refuse_if_held(name)
    return replace(prepare_backup_for(svc, find_instance(svc, name), target),
                   tags=checked, pin=pin)


def prepare_backup_for(svc: Services, instance: Instance,
                       target: str | None = None) -> BackupRequest:
    """:func:`prepare_backup` for an instance already discovered (the scheduler's)."""
    name = instance.name
    svc.gate.refuse_if_held(name)  # before its container is looked at (see prepare_backup)
    assert instance.container is not None
    container = svc.docker.inspect(instance.container.id)
    if not container.running:
        raise ContainerNotRunning(
            f"container {container.name} of instance {name} is not running; start it and retry"
        )
    if instance.clash is not None:  # the name is another host's: its history is not ours
        raise Conflict(instance.clash)
    if instance.policy.errors:
        raise InvalidLabels(f"instance {name} has label errors: {'; '.join(instance.errors)}")
    record = svc.catalog.get_instance(name)
    if record is not None and record.policy_override:
        # The engine reads its options (holdfast.jobs, holdfast.mode) from the
        # labels, so it sees them with the API-set policy laid over.
        container = replace(container, labels=effective_labels(container.labels,
                                                               record.policy_override))
    if instance.engine is None:
        raise UnsupportedEngine(f"instance {name}: {'; '.join(instance.errors)}")
    problem = mode_problem(instance.engine, has_physical_mode(instance.engine),
                           container.labels)
    if problem is not None:
        raise InvalidLabels(f"instance {name}: {problem}")
    engine = get_engine(instance.engine)
    engine.check(container)
    target_name = target or instance.policy.target
    storage = svc.target(target_name)
    recipients = svc.recipients_for(target_name)
    problem = encrypt_label_problem(instance.policy.encrypt, target_name,
                                    recipients.source if recipients else None)
    if problem is not None:
        raise InvalidLabels(f"instance {name}: {problem}")
    storage.check_writable()
    return BackupRequest(source=instance, instance=name, container=container, engine=engine,
                         storage=storage, databases=instance.policy.databases,
                         recipients=recipients)


def running_elsewhere(svc: Services, instance: str) -> Snapshot | None:
    """A snapshot of ``instance`` another live process is writing right now."""
    for snapshot in svc.catalog.list_snapshots(instance=instance, status=SnapshotStatus.RUNNING):
        if snapshot.runner != current_runner() and may_be_running(snapshot.runner):
            return snapshot
    return None


def refuse_if_running_elsewhere(svc: Services, instance: str) -> None:
    """:class:`AlreadyRunning` naming the snapshot if another process (a CLI
    backup, a second daemon on the catalog) is backing ``instance`` up now; the
    gate only knows this process's runs. A running row whose process is gone
    (killed mid-run) does not block."""
    other = running_elsewhere(svc, instance)
    if other is not None:
        raise AlreadyRunning(instance, other.id, kind="snapshot")


def execute_backup(svc: Services, request: BackupRequest,
                   progress: ProgressCallback | None = None, *,
                   holder: str | None = None,
                   cancelled: Callable[[], bool] = lambda: False,
                   phase: PhaseCallback = no_phases) -> Snapshot:
    """Take the snapshot. The catalog shows it ``running`` while it runs and
    ``complete`` or ``failed`` (with the reason) after; a failure re-raises.

    ``holder`` is who already claimed the instance in ``svc.gate`` (a job);
    without one, the run claims it itself. Raises :class:`AlreadyRunning` if
    another run of the instance is in progress, here or in another process.
    """
    created = utcnow()
    snapshot_id = new_snapshot_id(created)
    owned = holder is None
    if owned:
        svc.gate.claim(request.instance, snapshot_id)
    try:
        refuse_if_running_elsewhere(svc, request.instance)
        record_instances(svc, [request.source])
        snapshot = Snapshot(
            id=snapshot_id, instance=request.instance, engine=request.engine.name,
            target=request.storage.name, status=SnapshotStatus.RUNNING, created_at=created,
            data_key=data_key(request.instance, snapshot_id,
                              encrypted=request.recipients is not None),
            image=request.container.image,
            image_id=request.container.image_id, runner=current_runner(),
            tags=dict(request.tags), pinned=request.pin,
            encryption=ENCRYPTION_FORMAT if request.recipients is not None else None,
            recipients=request.recipients.fingerprints if request.recipients else (),
        )
        svc.catalog.add_snapshot(snapshot)
        context = {"instance": request.instance, "snapshot": snapshot_id}
        logger.info("backup of %s started as %s", request.instance, snapshot_id, extra=context)
        try:
            manifest = take_snapshot(
                snapshot_id=snapshot_id, instance=request.instance, created_at=created,
                container=request.container, engine=request.engine, runner=svc.docker,
                storage=request.storage, databases=request.databases, progress=progress,
                cancelled=cancelled, tags=request.tags, pinned=request.pin, phase=phase,
                recipients=request.recipients,
            )
        except BaseException as exc:
            reason = str(exc) or type(exc).__name__
            if requested(cancelled):  # whatever the cut stream raised
                reason = BY_REQUEST
            elif cancelled() and not isinstance(exc, Cancelled):
                reason = f"cancelled: Holdfast is shutting down ({reason})"
            # A failed snapshot holds nothing to keep, so it is not pinned:
            # only complete snapshots are (retention removes failed ones).
            svc.catalog.save_snapshot(snapshot.with_changes(
                status=SnapshotStatus.FAILED, finished_at=utcnow(), error=reason, runner=None,
                pinned=False))
            # Reported by whoever called us (CLI line, job record); logging it as an
            # error here too would print the same failure twice.
            logger.info("backup of %s failed: %s", request.instance, reason, extra=context)
            raise
        snapshot = snapshot.with_changes(
            status=SnapshotStatus.COMPLETE, finished_at=manifest.finished_at,
            size_bytes=manifest.size_bytes, raw_bytes=manifest.raw_bytes, sha256=manifest.sha256,
            runner=None,
        )
        svc.catalog.save_snapshot(snapshot)
        logger.info("backup of %s complete: %s, %d bytes", request.instance, snapshot_id,
                    manifest.size_bytes, extra=context)
        return snapshot
    finally:
        if owned:
            svc.gate.release(request.instance, snapshot_id)


def backup_then_prune(svc: Services, request: BackupRequest,
                      progress: ProgressCallback | None = None, *,
                      holder: str | None = None,
                      cancelled: Callable[[], bool] = lambda: False,
                      phase: PhaseCallback = no_phases) -> tuple[Snapshot, PruneResult]:
    """A backup followed by the instance's retention, as every entry point runs it.
    Returns the snapshot and what retention did (the ids removed, its failures)."""
    snapshot = execute_backup(svc, request, progress, holder=holder, cancelled=cancelled,
                              phase=phase)
    return snapshot, apply_retention(svc, request.instance)

