"""Use cases that refresh an instance's warm copy (:mod:`restore.warm`).

:func:`prepare_warm_refresh` picks the snapshot (the one named, else the
newest complete one that passed a verified restore, else the newest
complete one) and plans an ordinary restore of it as ``NAME-warm-<time>``,
labelled as a warm copy and publishing no port. :func:`execute_warm_refresh`
runs that restore, streaming the snapshot, stops the container cleanly once
it answered, and only then removes the older warm copies of the instance:
until the new one is ready, restores go on cloning the old. A refresh of the
snapshot a stopped warm copy already holds does nothing. A verified restore
that passes refreshes the warm copy of an instance labelled
``holdfast.warm=true`` (:func:`refresh_after_verification`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from backup.errors import HoldfastError, InvalidInput
from backup.phases import PhaseCallback, no_phases
from backup.streams import ProgressCallback
from backup.types import Snapshot, SnapshotStatus, utcnow
from restore.copies import RestoreOptions
from restore.runner import restore_snapshot
from restore.swap import stamp
from restore.warm import (
    WARM_OF_LABEL,
    WARM_STAMP_LABEL,
    WarmCopy,
    as_warm_copy,
    superseded,
    warm_name,
)
from service.bootstrap import Services
from service.records import JobRecord
from service.usecases.instances import policy_from_labels
from service.usecases.restores import RestoreRequest, latest_complete_snapshot, prepare_restore
from service.usecases.snapshots import get_snapshot
from service.usecases.warm_copies import list_warm_copies, remove_warm_copy

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 120.0
"""Seconds a warm copy's server is given to shut down cleanly (then SIGKILL)."""


@dataclass(frozen=True)
class WarmRefresh:
    """A checked refresh: the restore to run, or the warm copy that is current."""

    instance: str
    snapshot: Snapshot
    request: RestoreRequest | None
    current: WarmCopy | None = None


@dataclass(frozen=True)
class WarmResult:
    warm: WarmCopy
    refreshed: bool
    removed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"warm": self.warm.to_json(), "refreshed": self.refreshed,
                "removed": self.removed, "seconds": round(self.seconds, 3)}


def warm_snapshot(svc: Services, instance: str) -> Snapshot:
    """The newest complete snapshot of ``instance`` that passed a verified
    restore, else its newest complete one."""
    complete = svc.catalog.list_snapshots(instance=instance, status=SnapshotStatus.COMPLETE)
    for snapshot in complete:
        if (snapshot.verification or {}).get("result") == "passed":
            return snapshot
    return latest_complete_snapshot(svc, instance)


def prepare_warm_refresh(svc: Services, instance: str,
                         snapshot_ref: str | None = None) -> WarmRefresh:
    """Every check the refresh can fail before anything is created."""
    snapshot = warm_snapshot(svc, instance) if snapshot_ref is None \
        else get_snapshot(svc, snapshot_ref)
    if snapshot.instance != instance:
        raise InvalidInput(f"snapshot {snapshot.id} is of {snapshot.instance}, not {instance}: "
                           f"name one of {instance}'s (holdfast snapshots {instance})")
    current = next((w for w in list_warm_copies(svc, instance)
                    if w.snapshot_id == snapshot.id and not w.running), None)
    if current is not None:
        return WarmRefresh(instance=instance, snapshot=snapshot, request=None, current=current)
    at = stamp(utcnow())
    request = prepare_restore(svc, snapshot.id, warm_name(instance, at), None, False,
                              RestoreOptions(warm=False))
    spec = request.plan.container
    plan = replace(request.plan, container=replace(
        spec, published=(), labels={**spec.labels, WARM_OF_LABEL: instance,
                                    WARM_STAMP_LABEL: at}))
    return WarmRefresh(instance=instance, snapshot=snapshot, request=replace(request, plan=plan))


def execute_warm_refresh(svc: Services, refresh: WarmRefresh, *,
                         progress: ProgressCallback | None = None,
                         cancelled: Callable[[], bool] = lambda: False,
                         phase: PhaseCallback = no_phases) -> WarmResult:
    """Restore, stop cleanly, then remove the superseded warm copies. A
    restore or stop that fails leaves the old warm copies as they were."""
    if refresh.request is None:
        assert refresh.current is not None
        return WarmResult(warm=refresh.current, refreshed=False)
    started, request = time.monotonic(), refresh.request
    outcome = restore_snapshot(
        manifest=request.manifest, plan=request.plan, engine=request.engine,
        runtime=svc.docker, runner=svc.docker, storage=request.storage,
        ready_timeout=svc.settings.ready_timeout, progress=progress, cancelled=cancelled,
        phase=phase, identities=request.identities)
    try:
        svc.docker.stop_container(outcome.container.id, timeout=STOP_TIMEOUT)
        warm = as_warm_copy(svc.docker.inspect(outcome.container.id))
    except BaseException:
        svc.docker.remove_container(outcome.container.id)
        for volume in outcome.volumes:
            svc.docker.remove_volume(volume)
        raise
    assert warm is not None  # the plan carried the labels
    removed = []
    for old in superseded(list_warm_copies(svc, refresh.instance), refresh.instance, warm):
        try:
            remove_warm_copy(svc, old)
            removed.append(old.name)
        except HoldfastError as exc:  # the new one is ready: say so, and keep going
            logger.error("could not remove the older warm copy %s: %s", old.name, exc)
    logger.info("warm copy %s holds %s", warm.name, warm.snapshot_id,
                extra={"instance": refresh.instance, "snapshot": warm.snapshot_id})
    return WarmResult(warm=warm, refreshed=True, removed=removed,
                      seconds=time.monotonic() - started)


def refresh_warm(svc: Services, instance: str, snapshot_ref: str | None = None) -> WarmResult:
    return execute_warm_refresh(svc, prepare_warm_refresh(svc, instance, snapshot_ref))


def wants_warm(svc: Services, instance: str) -> bool:
    """Whether the instance's labels (as the catalog last saw them) ask for a
    warm copy (``holdfast.warm=true``)."""
    record = svc.catalog.get_instance(instance)
    return record is not None and policy_from_labels(record.labels, instance).warm


def refresh_after_verification(svc: Services, snapshot: Snapshot,
                               cancelled: Callable[[], bool] = lambda: False) -> str | None:
    """After ``snapshot`` passed a verified restore: refresh the warm copy of an
    instance that wants one, unless its warm copy holds this snapshot or a
    newer one. Returns the warm copy's name, or None; a failure
    is logged and returned as None, for the verification itself passed."""
    if (snapshot.verification or {}).get("result") != "passed" or \
            not wants_warm(svc, snapshot.instance):
        return None
    for warm in list_warm_copies(svc, snapshot.instance):
        held = svc.catalog.get_snapshot(warm.snapshot_id)
        if held is not None and held.created_at >= snapshot.created_at:
            return None  # it holds this snapshot, or a newer one: an old one was verified
    try:
        refresh = prepare_warm_refresh(svc, snapshot.instance, snapshot.id)
        return execute_warm_refresh(svc, refresh, cancelled=cancelled).warm.name
    except HoldfastError as exc:
        logger.warning("could not refresh the warm copy of %s from %s: %s", snapshot.instance,
                       snapshot.id, exc, extra={"instance": snapshot.instance})
        return None


class WatchedJobs(Protocol):
    """The part of :class:`~service.usecases.jobs.JobRunner` a refresh job needs."""

    def submit_watched(self, kind: str, work: Callable[[ProgressCallback, Callable[[], bool]],
                                                        dict[str, Any]], *,
                       instance: str | None = None, snapshot_id: str | None = None,
                       bytes_total: int | None = None) -> JobRecord:
        """Queue ``work(progress, cancelled)`` as a job of ``kind``."""
        ...


def start_warm_refresh(svc: Services, jobs: WatchedJobs, refresh: WarmRefresh) -> JobRecord:
    """Queue a checked refresh as a ``warm`` job; its result is :class:`WarmResult`'s JSON."""
    return jobs.submit_watched(
        "warm", lambda progress, cancelled: execute_warm_refresh(
            svc, refresh, progress=progress, cancelled=cancelled).to_json(),
        instance=refresh.instance, snapshot_id=refresh.snapshot.id,
        bytes_total=None if refresh.request is None else refresh.snapshot.size_bytes)
