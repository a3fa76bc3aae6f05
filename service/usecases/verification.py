"""Use cases for verified restores: prove that a snapshot restores, and holds
what its backup recorded.

:func:`prepare_verified_restore` does every check a verified restore can fail
on bad input before anything is created (the snapshot complete and readable,
an identity for an encrypted one, the image, the secrets its container needs).
:func:`execute_verified_restore` then makes an internal network of its own,
restores the snapshot into a throwaway container on it with no published
port (:func:`restore.runner.restore_snapshot`, which checks size and sha256
and decrypts on the way), has the engine measure the copy, compares that with
the figures recorded at backup time (:func:`restore.verification.judge`),
removes the container, its volumes and the network whatever happened, and
records the verdict on the snapshot. A snapshot that does not restore, or
whose copy differs, is a *failed* verification, recorded; a verification
that could not run (Docker or the target unreachable, cancelled) raises and
records nothing. :func:`remove_verification_leftovers` removes what a killed
process left behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from backup.cancel import raise_if_cancelled
from backup.encryption import Identities, require_identities
from backup.engines import Engine, get_engine
from backup.errors import (
    CorruptSnapshot,
    EngineError,
    HoldfastError,
    NotFound,
    SnapshotNotRestorable,
    UnsupportedEngine,
    WrongIdentity,
)
from backup.phases import Phase, PhaseCallback, no_phases
from backup.ports import ContainerSpec, VolumeSpec
from backup.storage import Storage
from backup.streams import ProgressCallback
from backup.types import (
    DatabaseContainer,
    Manifest,
    Snapshot,
    SnapshotStatus,
    isoformat,
    utcnow,
)
from restore.copies import CopyOptions
from restore.planner import RestorePlan, plan_restore
from restore.runner import restore_snapshot
from restore.verification import (
    NAME_PREFIX,
    VERIFICATION_LABEL,
    Verdict,
    failed_restore,
    judge,
    marks,
    runner_of,
    throwaway_name,
)
from service.bootstrap import Services
from service.ports import in_scope
from service.runs import current_runner, may_be_running
from service.usecases.restores import check_image, secret_values
from service.usecases.snapshots import get_snapshot, read_manifest
from service.usecases.warm import refresh_after_verification

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifiedRestoreRequest:
    """A checked verified restore, ready to run."""

    snapshot: Snapshot
    manifest: Manifest
    engine: Engine
    storage: Storage
    identities: Identities | None


def prepare_verified_restore(svc: Services, ref: str) -> VerifiedRestoreRequest:
    """Every check a verified restore of snapshot ``ref`` (an id or an
    unambiguous prefix) can fail on, before anything is created."""
    snapshot = get_snapshot(svc, ref)
    if snapshot.status != SnapshotStatus.COMPLETE:
        raise SnapshotNotRestorable(f"snapshot {snapshot.id} is {snapshot.status}; only "
                                    "complete snapshots are verified")
    storage = svc.target(snapshot.target)
    manifest = read_manifest(storage, snapshot)
    engine = get_engine(manifest.engine, manifest.data_format)
    if manifest.data_format not in engine.read_formats:
        raise UnsupportedEngine(f"snapshot {snapshot.id} has data format "
                                f"{manifest.data_format}, this Holdfast reads "
                                f"{', '.join(engine.read_formats)}")
    identities = None
    if manifest.encryption is not None:
        identities = require_identities(svc.identities(), manifest.recipients,
                                        f"snapshot {snapshot.id}")
    check_image(svc, manifest.image, given=False)
    _plan(svc, manifest, engine, throwaway_name(snapshot.id))  # the secrets it needs
    return VerifiedRestoreRequest(snapshot=snapshot, manifest=manifest, engine=engine,
                                  storage=storage, identities=identities)


def _plan(svc: Services, manifest: Manifest, engine: Engine, name: str) -> RestorePlan:
    """The throwaway copy: on network ``name`` only, nothing published, marked."""
    plan = plan_restore(
        manifest, new_name=name,
        default_data_paths=engine.data_paths(DatabaseContainer(
            id="", name=name, image=manifest.image, image_id="", env=manifest.env)),
        secret_values=secret_values(svc, manifest),
        taken_container_names=svc.docker.container_names(),
        existing_volumes=svc.docker.volume_names(), options=CopyOptions(network=name))
    labels = marks(manifest.snapshot_id, current_runner(), svc.settings.scope)
    container: ContainerSpec = replace(plan.container,
                                       labels={**plan.container.labels, **labels})
    volumes = tuple(VolumeSpec(name=v.name, labels={**v.labels, **labels})
                    for v in plan.volumes)
    return replace(plan, container=container, volumes=volumes)


def execute_verified_restore(svc: Services, request: VerifiedRestoreRequest, *,
                             job_id: str | None = None,
                             progress: ProgressCallback | None = None,
                             cancelled: Callable[[], bool] = lambda: False,
                             phase: PhaseCallback = no_phases,
                             holder: str | None = None) -> Snapshot:
    """Run the verified restore and record its verdict on the snapshot (which
    is returned, as it is now). At most one verification of an instance runs
    in this process at a time (:class:`~service.runs.AlreadyRunning`):
    ``holder`` is who already claimed it in ``svc.verify_gate`` (a job);
    without one, the run claims it itself. What it creates is removed on
    success, failure and cancellation alike. A pass then refreshes the warm
    copy of an instance labelled ``holdfast.warm=true``
    (:func:`~service.usecases.warm.refresh_after_verification`)."""
    snapshot = request.snapshot
    owned = holder is None
    claimant = holder or job_id or throwaway_name(snapshot.id)
    if owned:
        svc.verify_gate.claim(snapshot.instance, claimant, activity="verification")
    try:
        started = time.monotonic()
        verdict = _verify_in_throwaway(svc, request, progress, cancelled, phase)
        verdict = replace(verdict, job_id=job_id, seconds=time.monotonic() - started)
        recorded = record_verdict(svc, snapshot.id, verdict)
        refresh_after_verification(svc, recorded, cancelled)
        return recorded
    finally:
        if owned:
            svc.verify_gate.release(snapshot.instance, claimant)


def verification_result(snapshot: Snapshot) -> dict[str, object]:
    """What a verified restore answers (a job's result, the CLI's JSON): the
    snapshot it checked and the verdict recorded on it."""
    return {"snapshot_id": snapshot.id, "instance": snapshot.instance,
            "verified_at": isoformat(snapshot.verified_at), **(snapshot.verification or {})}


def verification_failure(snapshot: Snapshot) -> str | None:
    """The one-line reason ``snapshot``'s recorded verified restore failed, or
    None when it passed."""
    verdict = snapshot.verification or {}
    if verdict.get("result") == "passed":
        return None
    reason = verdict.get("reason") or "no verdict was recorded"
    return f"verified restore of {snapshot.id} failed: {reason}"


def _verify_in_throwaway(svc: Services, request: VerifiedRestoreRequest,
                         progress: ProgressCallback | None, cancelled: Callable[[], bool],
                         phase: PhaseCallback) -> Verdict:
    manifest, engine = request.manifest, request.engine
    name = throwaway_name(manifest.snapshot_id)
    svc.docker.create_network(name, internal=True,
                              labels=marks(manifest.snapshot_id, current_runner(),
                                           svc.settings.scope))
    try:
        plan = _plan(svc, manifest, engine, name)
        try:
            outcome = restore_snapshot(
                manifest=manifest, plan=plan, engine=engine, runtime=svc.docker,
                runner=svc.docker, storage=request.storage,
                ready_timeout=svc.settings.ready_timeout, progress=progress, phase=phase,
                cancelled=cancelled, identities=request.identities)
        except (CorruptSnapshot, EngineError, WrongIdentity) as exc:
            if cancelled():
                raise
            return failed_restore(str(exc))  # the runner has removed what it made
        try:
            phase(Phase.VERIFYING)
            return _measured_verdict(svc, manifest, engine, outcome.container, cancelled)
        finally:
            _remove_copy(svc, outcome.container, plan)
    finally:
        _remove_network(svc, name)


def _measured_verdict(svc: Services, manifest: Manifest, engine: Engine,
                      copy: DatabaseContainer, cancelled: Callable[[], bool]) -> Verdict:
    try:
        measured = engine.measure(copy, svc.docker, manifest.databases)
    except EngineError as exc:
        if cancelled():
            raise
        return Verdict(result="failed", reason=f"measuring the restored copy failed: {exc}")
    raise_if_cancelled(cancelled)  # a cancel heard while measuring records no verdict
    return judge(manifest.figures, measured)


def record_verdict(svc: Services, snapshot_id: str, verdict: Verdict) -> Snapshot:
    """Store ``verdict`` on the snapshot (as it is now in the catalog: a pin or
    a tag set meanwhile is kept) and log it; returns the snapshot."""
    current = svc.catalog.get_snapshot(snapshot_id)
    if current is None:
        raise NotFound(f"snapshot {snapshot_id} was deleted while it was verified")
    updated = current.with_changes(verified_at=utcnow(), verification=verdict.to_json())
    svc.catalog.save_snapshot(updated)
    context = {"instance": current.instance, "snapshot": snapshot_id}
    if verdict.passed:
        logger.info("verified restore of %s passed", snapshot_id, extra=context)
    else:
        logger.warning("verified restore of %s failed: %s", snapshot_id, verdict.reason,
                       extra=context)
    return updated


def _remove_copy(svc: Services, copy: DatabaseContainer, plan: RestorePlan) -> None:
    try:
        svc.docker.remove_container(copy.id)
    except HoldfastError as exc:
        logger.error("could not remove verification container %s: %s", copy.name, exc)
        return  # its volumes are still mounted: the next start removes both
    for volume in plan.volume_names:
        try:
            svc.docker.remove_volume(volume)
        except HoldfastError as exc:
            logger.error("could not remove verification volume %s: %s", volume, exc)


def _remove_network(svc: Services, name: str) -> None:
    try:
        svc.docker.remove_network(name)
    except HoldfastError as exc:
        logger.error("could not remove verification network %s: %s", name, exc)


def remove_verification_leftovers(svc: Services) -> list[str]:
    """Remove the containers, volumes and networks of verified restores (by
    :data:`~restore.verification.NAME_PREFIX` *and* labels, in this scope)
    whose process is gone; returns their names, each logged. Those of a live
    process, here or on another host, stay."""
    removed: list[str] = []
    for name in sorted(n for n in svc.docker.container_names() if n.startswith(NAME_PREFIX)):
        try:
            container = svc.docker.inspect(name)
        except NotFound:
            continue
        if _is_leftover(svc, name, container.labels):
            svc.docker.remove_container(container.id)
            removed.append(name)
    for name in sorted(n for n in svc.docker.volume_names() if n.startswith(NAME_PREFIX)):
        info = svc.docker.get_volume(name)
        if info is not None and not info.users and _is_leftover(svc, name, info.labels):
            svc.docker.remove_volume(name)
            removed.append(name)
    for name, labels in sorted(svc.docker.labelled_networks(VERIFICATION_LABEL).items()):
        if _is_leftover(svc, name, labels):
            svc.docker.remove_network(name)
            removed.append(name)
    for name in removed:
        logger.warning("removed %s, left by a verified restore whose process is gone", name)
    return removed


def _is_leftover(svc: Services, name: str, labels: Mapping[str, str]) -> bool:
    runner = runner_of(name, labels)
    return runner is not None and in_scope(labels, svc.settings.scope) \
        and not may_be_running(runner)
