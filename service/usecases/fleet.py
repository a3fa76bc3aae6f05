"""Work across the fleet: requests for another host's instance, leases, lost hosts.

A daemon asked to back up or restore onto an instance that lives on another
host (the catalog records where each instance was discovered) does not run
it: it queues the request as a job row for that host (:func:`queue_request`),
whose daemon claims it (:func:`claim_requests`) and runs it as its own; the
result and progress come back through the same row, where the caller's
``?wait`` and event stream read them. A snapshot's verifications (an
integrity re-read, a verified restore) go the same way to its instance's
host, which has its target, its identity and its engine. Every running job
of a daemon carries a lease its heartbeats renew (:func:`keep_leases`); a host that stops
beating lets its leases run out, and whichever daemon notices marks those
jobs ``interrupted`` (:func:`interrupt_lost_jobs`). Its instances are not
taken over: no other host can reach its engine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from backup.errors import HostDown
from backup.phases import Phase
from backup.types import Snapshot, utcnow
from restore.copies import RestoreOptions
from service.bootstrap import Services
from service.hosts import check_host_name, host_status, lease_seconds
from service.records import ERROR_TYPE, JobRecord, JobStatus
from service.usecases import backups, integrity, restores, verification
from service.usecases.hosts import find_host
from service.usecases.idempotency import Idempotency
from service.usecases.jobs import JobRunner, new_job_id
from service.usecases.snapshots import get_snapshot

logger = logging.getLogger(__name__)

LOST_HOST = ("interrupted: the daemon of its host stopped heartbeating and its lease expired; "
             "it is marked so by another daemon")


def owner_elsewhere(svc: Services, instance: str) -> str | None:
    """The host ``instance`` was last discovered on, if that is not this
    daemon's host; None for an instance of this host, or one never seen."""
    record = svc.catalog.get_instance(instance)
    if record is None or record.host is None or record.host == svc.host_name():
        return None
    return record.host


def check_host_alive(svc: Services, name: str, now: datetime | None = None) -> None:
    """:class:`HostDown` unless host ``name`` has beaten recently (503, exit 5)."""
    host = find_host(svc, name)
    if host is None:
        raise HostDown(f"host {name} has never registered: start holdfast serve there "
                       "(holdfast hosts lists the fleet)")
    now = now or utcnow()
    if host_status(host, now, svc.settings.heartbeat_interval) != "alive":
        age = round((now - host.last_heartbeat).total_seconds())
        raise HostDown(f"host {name} has sent no heartbeat for {age}s: its daemon is down "
                       "or cannot reach the catalog; retry once holdfast hosts shows it alive")


def queue_request(svc: Services, host: str, kind: str, *, instance: str | None,
                  request: dict[str, Any], snapshot_id: str | None = None,
                  idempotency: Idempotency | None = None) -> JobRecord:
    """Queue ``request`` (a job of ``kind``: names and options, never a secret)
    for ``host``'s daemon; :class:`HostDown` if that host is not alive. The
    job is returned as queued; its host claims and runs it."""
    check_host_alive(svc, host)
    job = JobRecord(id=new_job_id(), kind=kind, status=JobStatus.QUEUED, created_at=utcnow(),
                    instance=instance, snapshot_id=snapshot_id, phase=str(Phase.QUEUED),
                    idempotency_key=idempotency.key if idempotency else None,
                    request_fingerprint=idempotency.fingerprint if idempotency else None,
                    host=host, request={"kind": kind, **request})
    svc.catalog.add_job(job)
    logger.info("%s of %s queued for host %s as %s", kind, instance or snapshot_id, host,
                job.id, extra={"instance": instance, "job": job.id})
    return job


def claim_requests(svc: Services, limit: int, now: datetime | None = None) -> list[JobRecord]:
    """Up to ``limit`` requests queued for this host, now leased to it."""
    until = (now or utcnow()) + timedelta(seconds=lease_seconds(svc.settings.heartbeat_interval))
    return svc.catalog.claim_requests(svc.host_name(), limit, until)


def refuse_request(svc: Services, job: JobRecord, error: Exception) -> None:
    """Record a claimed request that cannot run here (its instance gone, its
    input refused) as failed, with the one-line reason its caller sees."""
    now = utcnow()
    svc.catalog.save_job(replace(job, status=JobStatus.FAILED,
                                 started_at=job.started_at or now, finished_at=now,
                                 error=" ".join(str(error).split()) or type(error).__name__,
                                 result={ERROR_TYPE: type(error).__name__}))
    logger.warning("request %s (%s) refused: %s", job.id, job.kind, error,
                   extra={"job": job.id, "instance": job.instance})


def keep_leases(svc: Services, now: datetime | None = None) -> int:
    """Renew the leases of this host's unfinished jobs for one more lease."""
    until = (now or utcnow()) + timedelta(seconds=lease_seconds(svc.settings.heartbeat_interval))
    return svc.catalog.renew_leases(svc.host_name(), until)


def interrupt_lost_jobs(svc: Services, now: datetime | None = None) -> list[JobRecord]:
    """Mark ``interrupted`` the jobs of other hosts whose leases ran out."""
    lost = svc.catalog.interrupt_expired(now or utcnow(), svc.host_name(), LOST_HOST)
    for job in lost:
        logger.warning("job %s (%s of %s) on host %s marked interrupted: its host stopped "
                       "heartbeating", job.id, job.kind, job.instance, job.host,
                       extra={"job": job.id, "instance": job.instance})
    return lost


def start_backup(svc: Services, jobs: JobRunner, name: str, options: Mapping[str, Any], *,
                 request: dict[str, Any], idempotency: Idempotency | None = None,
                 claimed: JobRecord | None = None) -> JobRecord:
    """Back up ``name`` (``options`` as :func:`~service.usecases.backups.prepare_backup`
    takes them): here if it lives here, else queued for its host with
    ``request`` (the caller's request as its host parses it). ``claimed``: the
    request this host claimed, run as that job."""
    host = None if claimed is not None else owner_elsewhere(svc, name)
    if host is not None:
        return queue_request(svc, host, "backup", instance=name, request=request,
                             idempotency=idempotency)
    prepared = backups.prepare_backup(svc, name, **options)
    return jobs.submit_backup(prepared, idempotency=idempotency, claimed=claimed)


def _queue_at_owner(svc: Services, kind: str, snapshot_id: str,
                    idempotency: Idempotency | None) -> JobRecord | None:
    """A job of ``kind`` on snapshot ``snapshot_id`` queued for its instance's
    host, if that is another host; None when it runs here."""
    snapshot = get_snapshot(svc, snapshot_id)
    host = owner_elsewhere(svc, snapshot.instance)
    if host is None:
        return None
    return queue_request(svc, host, kind, instance=snapshot.instance, snapshot_id=snapshot.id,
                         request={"snapshot": snapshot.id}, idempotency=idempotency)


def start_verify(svc: Services, jobs: JobRunner, snapshot_id: str, *,
                 idempotency: Idempotency | None = None,
                 claimed: JobRecord | None = None) -> JobRecord:
    """Re-read snapshot ``snapshot_id``'s stored object (an id or a prefix):
    here if its instance lives here (or was never seen), else queued for its
    instance's host (kind ``verify``), which has its target and the identity
    that opens it. ``claimed``: the request this host claimed, run as that job."""
    if claimed is None and (queued := _queue_at_owner(svc, "verify", snapshot_id,
                                                      idempotency)) is not None:
        return queued
    return integrity.submit_verify(jobs, integrity.prepare_verify(svc, snapshot_id),
                                   idempotency, claimed=claimed)


def start_verified_restore(svc: Services, jobs: JobRunner, snapshot_id: str, *,
                           idempotency: Idempotency | None = None,
                           claimed: JobRecord | None = None) -> JobRecord:
    """Verify snapshot ``snapshot_id`` by a restore (an id or a prefix): here
    if its instance lives here (or was never seen), else queued for its
    instance's host (kind ``verify-restore``), whose engine has its image and
    makes the throwaway copy. ``claimed``: the request this host claimed."""
    if claimed is None and (queued := _queue_at_owner(svc, "verify-restore", snapshot_id,
                                                      idempotency)) is not None:
        return queued
    prepared = verification.prepare_verified_restore(svc, snapshot_id)
    return jobs.submit_verified_restore(prepared, idempotency=idempotency, claimed=claimed)


@dataclass(frozen=True)
class RestoreAsked:
    """A restore as a caller asked for it (:func:`restores.prepare_restore`'s
    arguments), and on which host (None: this one). ``snapshot`` is an id or
    a prefix; without one, the newest complete snapshot of ``latest_of``
    (carrying ``tags``)."""

    snapshot: str | None
    name: str | None
    image: str | None = None
    force: bool = False
    options: RestoreOptions | None = None
    replace: str | None = None
    host: str | None = None
    latest_of: str | None = None
    tags: Mapping[str, str] | None = None


def _snapshot_asked(svc: Services, asked: RestoreAsked) -> Snapshot:
    if asked.snapshot is not None:
        return get_snapshot(svc, asked.snapshot)
    assert asked.latest_of is not None
    return restores.newest_snapshot(svc, asked.latest_of, asked.tags)


def start_restore(svc: Services, jobs: JobRunner, asked: RestoreAsked, *,
                  request: dict[str, Any], idempotency: Idempotency | None = None,
                  claimed: JobRecord | None = None) -> JobRecord:
    """Restore the snapshot ``asked`` names here, or with ``asked.host``
    another host: queued there with ``request`` (the caller's request as its
    host parses it), the snapshot read from a target both share."""
    if claimed is None and asked.host is not None:
        check_host_name(asked.host, "host")
        if asked.host != svc.host_name():
            return queue_restore(svc, asked, request=request, idempotency=idempotency)
    snapshot = _snapshot_asked(svc, asked)
    prepared = restores.prepare_restore(svc, snapshot.id, asked.name, asked.image,
                                        asked.force, options=asked.options,
                                        replace=asked.replace)
    return jobs.submit_restore(prepared, idempotency=idempotency, claimed=claimed)


def queue_restore(svc: Services, asked: RestoreAsked, *, request: dict[str, Any],
                  idempotency: Idempotency | None = None) -> JobRecord:
    """Queue the restore ``asked`` for host ``asked.host`` (the snapshot resolved
    here, so its host restores exactly the one named)."""
    assert asked.host is not None
    snapshot = _snapshot_asked(svc, asked)
    return queue_request(svc, check_host_name(asked.host, "host"), "restore",
                         instance=snapshot.instance, snapshot_id=snapshot.id,
                         request={**request, "snapshot": snapshot.id}, idempotency=idempotency)


def await_request(svc: Services, job: JobRecord, timeout: float = 24 * 3600.0,
                  every: float = 0.5) -> JobRecord:
    """Job ``job`` once it has ended (read from the catalog every ``every``
    seconds), or as it stands after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not job.ended and time.monotonic() < deadline:
        time.sleep(every)
        job = svc.catalog.get_job(job.id) or job
    return job
