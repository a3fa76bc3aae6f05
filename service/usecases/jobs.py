"""Background jobs: the backups and restores the API and the scheduler start.

A small thread pool bounds how many run at once (``HOLDFAST_JOB_WORKERS``,
default 2); the rest wait as ``queued``. Each job's life (queued, running,
succeeded or failed, with its result or one-line error) is recorded in the
catalog, so ``GET /v1/jobs/{id}`` works from any process reading it.

A backup job claims its instance in the services' gate when it is submitted,
so a second request for the same instance is refused at once with the running
job's id, whether it came from the API or the scheduler. On shutdown the runner
stops taking work, lets running jobs finish for a grace period, then cancels
them: their streams stop, their partial objects are discarded and their
snapshots are marked failed. :meth:`JobRunner.cancel_job` does the same for one
job on request (``DELETE /v1/jobs/{id}``, :mod:`service.usecases.cancellation`),
recording it ``cancelled``: each job has its own signal and its own exec streams.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import timedelta
from typing import Any

from backup.cancel import CancelSignals, raise_if_cancelled
from backup.errors import Cancelled, Conflict, HoldfastError
from backup.labels import AFTER_BACKUP
from backup.phases import Phase
from backup.streams import ProgressCallback
from backup.types import Snapshot, SnapshotStatus, utcnow
from backup.volumes import ClonePlan
from service.bootstrap import Services
from service.observability.metrics import Metrics
from service.records import ERROR_TYPE, JobRecord, JobStatus
from service.usecases.backups import (
    BackupRequest,
    backup_then_prune,
    refuse_if_running_elsewhere,
)
from service.usecases.idempotency import Idempotency, existing_job
from service.usecases.job_progress import JobWatchers, LiveJobs, wait_for_end
from service.usecases.job_queries import get_job
from service.usecases.notifications import RunAlerts, Silent
from service.usecases.replace import claim_instance
from service.usecases.restores import RestoreRequest, execute_restore
from service.usecases.verification import (
    VerifiedRestoreRequest,
    execute_verified_restore,
    verification_failure,
    verification_result,
)
from service.usecases.volumes import execute_clone

logger = logging.getLogger(__name__)

JobWork = Callable[[], dict[str, Any]]
WatchedWork = Callable[[ProgressCallback, Callable[[], bool]], dict[str, Any]]

CANCELLED_BY_REQUEST = "cancelled by request"
"""The error of a job cancelled through ``DELETE /v1/jobs/{id}``."""


def new_job_id() -> str:
    return f"job-{utcnow().strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"


class ShuttingDown(HoldfastError):
    retryable = True


class JobRunner:
    def __init__(self, services: Services, workers: int, metrics: Metrics | None = None,
                 alerts: RunAlerts | None = None, lease_seconds: float | None = None) -> None:
        self._services = services
        self._lease_seconds = lease_seconds
        """A daemon's jobs are leased for this long (its heartbeats renew them);
        None (a CLI run): no lease, so no other daemon ever takes them for dead."""
        self.alerts: RunAlerts = alerts or Silent()
        """Told how each run ends (:mod:`service.usecases.notifications`); never raises."""
        self.watchers = JobWatchers()
        """Told of every write of a job this runner queued (``?wait``, SSE)."""
        # Writes of this runner's jobs go through their LiveJob: progress and
        # status never overwrite each other, and watchers hear of each.
        self._catalog = LiveJobs(services.catalog, self.watchers)
        self._key_locks: dict[str, tuple[threading.Lock, int]] = {}  # lock, its users
        self._metrics = metrics or Metrics()
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers),
                                        thread_name_prefix="holdfast-job")
        self._futures: dict[str, Future[None]] = {}
        self._lock = threading.Lock()
        self._closing = False
        self.cancel = threading.Event()
        """Shutdown's cancel of every job; :meth:`cancel_job` cancels one."""
        self._signals = CancelSignals(self.cancel)

    # --- submitting --------------------------------------------------------------

    def submit(self, kind: str, work: JobWork, *, instance: str | None = None,
               snapshot_id: str | None = None, job_id: str | None = None,
               on_exit: Callable[[], None] | None = None,
               idempotency: Idempotency | None = None,
               bytes_total: int | None = None, claimed: JobRecord | None = None) -> JobRecord:
        """Queue ``work`` as a job of ``kind``; ``idempotency`` is recorded on
        it (the catalog refuses a second job with its key: Conflict) and
        ``bytes_total`` is what its byte count is expected to reach. With
        ``claimed`` (a request another daemon queued for this host, claimed
        here), the job is that row: its id, its creation and its lease."""
        if self._closing:
            raise ShuttingDown("Holdfast is shutting down and takes no new work")
        now, host, lease = utcnow(), None, None
        if self._lease_seconds is not None:  # a daemon's: its host's heartbeats renew it
            host = self._services.host_name()
            lease = now + timedelta(seconds=self._lease_seconds)
        job = JobRecord(id=job_id or new_job_id(), kind=kind, status=JobStatus.QUEUED,
                        created_at=now, instance=instance, snapshot_id=snapshot_id,
                        phase=str(Phase.QUEUED), bytes_total=bytes_total,
                        idempotency_key=idempotency.key if idempotency else None,
                        request_fingerprint=idempotency.fingerprint if idempotency else None,
                        host=host, lease_expires_at=lease)
        if claimed is None:
            self._catalog.add_job(job)
        else:
            job = replace(claimed, snapshot_id=snapshot_id or claimed.snapshot_id,
                          phase=str(Phase.QUEUED), bytes_total=bytes_total)
            self._catalog.save_job(job)
        with self._lock:
            self._metrics.queued_jobs.inc()
            future = self._pool.submit(self._run, job, work, on_exit)
            self._futures[job.id] = future
        future.add_done_callback(lambda _: self._forget(job.id))
        return job

    def submit_backup(self, request: BackupRequest, *, trigger: str = "api",
                      idempotency: Idempotency | None = None,
                      claimed: JobRecord | None = None) -> JobRecord:
        """Queue a backup; raises :class:`~service.runs.AlreadyRunning` (with the
        running job's or snapshot's id) if the instance already has one, here or
        in another process, so the caller answers 409 instead of a job bound to fail.
        Its ``bytes_total`` is an estimate: the stored size of the instance's
        newest complete snapshot."""
        job_id = claimed.id if claimed is not None else new_job_id()
        gate = self._services.gate
        gate.claim(request.instance, job_id)

        def work() -> dict[str, Any]:
            self.alerts.run_started(request.instance, job=job_id)
            try:
                snapshot, pruned = backup_then_prune(
                    self._services, request, self._catalog.progress_callback(job_id),
                    holder=job_id, cancelled=self._signals.of(job_id),
                    phase=self._catalog.phase_callback(job_id))
            except Exception as exc:
                failed = self._catalog.latest_snapshot(request.instance)
                if failed is not None and failed.status == SnapshotStatus.FAILED:
                    self._metrics.observe(failed)
                self._backup_failed(request.instance, job_id, failed, exc)
                raise
            finally:
                # Before the job's final status is stored: a client that sees it
                # finished may ask for the next backup at once (on_exit still
                # releases a job that never ran).
                gate.release(request.instance, job_id)
            self._metrics.observe(snapshot)
            self.alerts.backup_finished(request.instance, job=job_id, snapshot=snapshot,
                                        error=None)
            self.alerts.retention_finished(request.instance, failures=pruned.failures)
            verifying = None
            if request.source.policy.verify == AFTER_BACKUP:
                # Here, not at the top: the scheduled starters import this runner.
                from service.usecases.scheduled import start_verified_restore

                verifying = start_verified_restore(self._services, self, snapshot.id,
                                                   trigger="after-backup")
            return {**snapshot.to_json(), "pruned": pruned.forgotten,
                    "verification_job": verifying.id if verifying else None}

        try:
            refuse_if_running_elsewhere(self._services, request.instance)
            return self.submit("backup", work, instance=request.instance, job_id=job_id,
                               on_exit=lambda: gate.release(request.instance, job_id),
                               idempotency=idempotency, claimed=claimed,
                               bytes_total=self._previous_size(request.instance))
        except BaseException:
            gate.release(request.instance, job_id)
            raise

    def _backup_failed(self, instance: str, job_id: str, snapshot: Snapshot | None,
                       exc: Exception) -> None:
        """Tell the alerts: a failure, or (cancelled on request or at shutdown)
        only the end of its ping; ops asked for that stop."""
        reason = str(exc) or type(exc).__name__
        if self._signals.of(job_id).requested or isinstance(exc, Cancelled):
            self.alerts.backup_cancelled(instance, job=job_id, reason=reason)
            return
        failed = snapshot if snapshot is not None and snapshot.status == SnapshotStatus.FAILED \
            else None
        self.alerts.backup_finished(instance, job=job_id, snapshot=failed, error=reason)

    def submit_restore(self, request: RestoreRequest, *,
                       idempotency: Idempotency | None = None,
                       claimed: JobRecord | None = None) -> JobRecord:
        """Queue a prepared restore; its result is the restore's JSON (the
        copy it makes is recorded with this job's id). Its ``bytes_total`` is
        the snapshot's stored size, which the load reads exactly. A restore
        with ``replace`` claims the gate of the instance replaced from now to
        its end, as a backup does: :class:`~service.runs.AlreadyRunning` while
        a run of it is in progress, and no backup of it while it runs."""
        job_id = claimed.id if claimed is not None else new_job_id()
        replaced = None if request.replace is None else \
            claim_instance(self._services, request.replace, job_id)

        def release() -> None:
            if replaced is not None:
                self._services.gate.release(replaced, job_id)

        def work() -> dict[str, Any]:
            try:
                return execute_restore(self._services, request,
                                       self._catalog.progress_callback(job_id), job_id=job_id,
                                       cancelled=self._signals.of(job_id),
                                       phase=self._catalog.phase_callback(job_id)).to_json()
            except Exception as exc:
                if not self._signals.of(job_id).requested and not isinstance(exc, Cancelled):
                    self.alerts.restore_failed(request.snapshot.instance, job=job_id,
                                               snapshot=request.snapshot.id,
                                               error=str(exc) or type(exc).__name__)
                raise
            finally:
                release()  # before its final status is stored, as a backup's

        try:
            return self.submit(
                "restore", work, instance=request.snapshot.instance,
                snapshot_id=request.snapshot.id, job_id=job_id, on_exit=release,
                idempotency=idempotency, bytes_total=request.snapshot.size_bytes,
                claimed=claimed)
        except BaseException:
            release()
            raise

    def submit_once(self, idempotency: Idempotency | None,
                    start: Callable[[Idempotency | None], JobRecord]) -> tuple[JobRecord, bool]:
        """``start(idempotency)`` (which prepares and submits a job with it),
        unless a job with the key exists: then that job, and True for "replayed".
        The same key with another request raises
        :class:`~service.usecases.idempotency.IdempotencyKeyReused`. Requests
        with one key run one at a time here; between processes the catalog's
        unique key decides, and the loser returns the winner's job."""
        if idempotency is None:
            return start(None), False
        key = idempotency.key
        with self._lock:
            key_lock, users = self._key_locks.get(key, (threading.Lock(), 0))
            self._key_locks[key] = (key_lock, users + 1)
        try:
            with key_lock:
                found = existing_job(self._services.catalog, idempotency)
                if found is not None:
                    return found, True
                try:
                    return start(idempotency), False
                except Conflict:
                    found = existing_job(self._services.catalog, idempotency)
                    if found is None:
                        raise
                    return found, True
        finally:
            with self._lock:
                users = self._key_locks[key][1] - 1
                if users:
                    self._key_locks[key] = (key_lock, users)
                else:
                    del self._key_locks[key]

    def get(self, job_id: str) -> JobRecord:
        """Job ``job_id`` as the catalog records it (:class:`JobNotFound` if none)."""
        return get_job(self._services, job_id)

    def wait(self, job_id: str, timeout: float) -> JobRecord:
        """Block until job ``job_id`` has ended or ``timeout`` seconds passed
        (woken by the job's own writes); the job as it then stands."""
        return wait_for_end(self.watchers, lambda: self.get(job_id), timeout)

    def _previous_size(self, instance: str) -> int | None:
        complete = self._services.catalog.list_snapshots(instance=instance,
                                                         status=SnapshotStatus.COMPLETE)
        return complete[0].size_bytes if complete else None

    def submit_watched(self, kind: str, work: WatchedWork, *, instance: str | None = None,
                       snapshot_id: str | None = None, idempotency: Idempotency | None = None,
                       bytes_total: int | None = None,
                       claimed: JobRecord | None = None) -> JobRecord:
        """Queue ``work(progress, cancelled)`` as a job of ``kind``, handing it the
        job's own progress callback and cancel signal (a verification's read);
        ``claimed`` as :meth:`submit` takes it."""
        job_id = claimed.id if claimed is not None else new_job_id()
        return self.submit(kind, lambda: work(self._catalog.progress_callback(job_id),
                                              self._signals.of(job_id)),
                           instance=instance, snapshot_id=snapshot_id, job_id=job_id,
                           idempotency=idempotency, bytes_total=bytes_total, claimed=claimed)

    def submit_verified_restore(self, request: VerifiedRestoreRequest, *,
                                trigger: str = "api",
                                idempotency: Idempotency | None = None,
                                claimed: JobRecord | None = None) -> JobRecord:
        """Queue a prepared verified restore (kind ``verify-restore``); its
        result is the verdict recorded on the snapshot, ``result: failed``
        when the snapshot did not restore or its copy differs. Claims the
        instance's verification gate from now to its end:
        :class:`~service.runs.AlreadyRunning` while one of it is queued or runs.
        ``claimed`` as :meth:`submit` takes it."""
        job_id = claimed.id if claimed is not None else new_job_id()
        instance = request.snapshot.instance
        gate = self._services.verify_gate
        gate.claim(instance, job_id, activity="verification")
        signal = self._signals.of(job_id)

        def work() -> dict[str, Any]:
            try:
                snapshot = execute_verified_restore(
                    self._services, request, job_id=job_id, holder=job_id,
                    progress=self._catalog.progress_callback(job_id), cancelled=signal,
                    phase=self._catalog.phase_callback(job_id))
            except Exception as exc:
                if not signal.requested:
                    self._metrics.observe_verification(instance, None)
                    if not isinstance(exc, Cancelled):
                        self.alerts.verification_finished(
                            instance, job=job_id, snapshot=request.snapshot.id,
                            error=f"verified restore of {request.snapshot.id} could not "
                                  f"run: {exc}")
                raise
            finally:
                gate.release(instance, job_id)
            self._metrics.observe_verification(instance, snapshot)
            self.alerts.verification_finished(instance, job=job_id, snapshot=snapshot.id,
                                              error=verification_failure(snapshot))
            return verification_result(snapshot)

        try:
            job = self.submit("verify-restore", work, instance=instance,
                              snapshot_id=request.snapshot.id, job_id=job_id,
                              on_exit=lambda: gate.release(instance, job_id),
                              idempotency=idempotency,
                              bytes_total=request.snapshot.size_bytes, claimed=claimed)
        except BaseException:
            gate.release(instance, job_id)
            raise
        logger.info("verified restore of %s queued as %s (%s)", request.snapshot.id, job.id,
                    trigger, extra={"instance": instance, "job": job.id})
        return job

    def observe_verification_error(self, instance: str, snapshot_id: str, error: str) -> None:
        """Count and report a verified restore of ``instance`` that could not start."""
        self._metrics.observe_verification(instance, None)
        self.alerts.verification_finished(instance, job=None, snapshot=snapshot_id,
                                          error=f"verified restore of {snapshot_id} cannot "
                                                f"start: {error}")

    def submit_clone(self, plan: ClonePlan) -> JobRecord:
        """Queue a decided volume clone; its result is the clone's JSON."""
        job_id = new_job_id()
        return self.submit("clone", lambda: execute_clone(
            self._services, plan, cancelled=self._signals.of(job_id)).to_json(), job_id=job_id)

    # --- running -------------------------------------------------------------------

    def _run(self, job: JobRecord, work: JobWork, on_exit: Callable[[], None] | None) -> None:
        self._metrics.queued_jobs.dec()
        signal = self._signals.of(job.id)
        try:
            if signal.requested:  # cancelled between its future starting and here
                self._catalog.save_job(replace(job, status=JobStatus.CANCELLED,
                                               finished_at=utcnow(), error=CANCELLED_BY_REQUEST))
                return
            if self.cancel.is_set():
                self._catalog.save_job(replace(job, status=JobStatus.FAILED,
                                               finished_at=utcnow(),
                                               error="cancelled: Holdfast shut down first"))
                return
            job = replace(job, status=JobStatus.RUNNING, started_at=utcnow())
            self._catalog.save_job(job)
            self._metrics.running_jobs.inc()
            try:
                # The job's execs are its own, so its cancel cuts only them.
                with self._services.docker.exec_holder(job.id):
                    raise_if_cancelled(signal)  # a cancel that came while it was marked running
                    result = work()
            except Exception as exc:  # a job's failure is recorded, never lost in a thread
                if signal.requested:  # whatever broke it (a cut stream), it was the cancel
                    logger.warning("job %s (%s) cancelled by request: %s", job.id, job.kind,
                                   exc, extra={"job": job.id, "instance": job.instance})
                    self._catalog.save_job(replace(job, status=JobStatus.CANCELLED,
                                                   finished_at=utcnow(),
                                                   error=CANCELLED_BY_REQUEST))
                    return
                level = logging.WARNING if isinstance(exc, Cancelled) else logging.ERROR
                logger.log(level, "job %s (%s) failed: %s", job.id, job.kind, exc,
                           extra={"job": job.id, "instance": job.instance})
                # The error's class, so a client (holdfast --server) exits as a local
                # run of the same failure does; kept in result, shown as error_type.
                self._catalog.save_job(replace(job, status=JobStatus.FAILED,
                                               finished_at=utcnow(),
                                               error=str(exc) or type(exc).__name__,
                                               result={ERROR_TYPE: type(exc).__name__}))
                return
            finally:
                self._metrics.running_jobs.dec()
            self._catalog.save_job(replace(
                job, status=JobStatus.SUCCEEDED, finished_at=utcnow(), result=result,
                snapshot_id=result.get("snapshot_id", result.get("id", job.snapshot_id)),
            ))
        finally:
            if on_exit is not None:
                on_exit()

    def _forget(self, job_id: str) -> None:
        with self._lock:
            self._futures.pop(job_id, None)
        self._signals.forget(job_id)

    # --- cancelling one job -------------------------------------------------------

    def cancel_job(self, job_id: str) -> bool:
        """Ask job ``job_id`` to stop, from any thread. A queued one is recorded
        ``cancelled`` at once and never starts. A running one has its signal set
        (seen between chunks and steps) and its exec streams cut, so a dump
        stalled on a lock stops too; it then fails, cleaning up as any failure
        does, and is recorded ``cancelled``. False if this runner lacks the job
        (ended, or run by another process)."""
        with self._lock:
            future = self._futures.get(job_id)
        if future is None:
            return False
        self._signals.of(job_id).request()
        if future.cancel():
            self._end_unstarted(job_id, JobStatus.CANCELLED, CANCELLED_BY_REQUEST)
        else:
            cut = self._services.docker.abort_streams(job_id)
            logger.info("cancelling job %s: cut %d exec stream(s)", job_id, cut,
                        extra={"job": job_id})
        return True

    def _end_unstarted(self, job_id: str, status: JobStatus, error: str) -> None:
        """Record a job whose future was cancelled before it ran, and undo what
        its submit did (the queued count, its instance's gate)."""
        record = self._catalog.get_job(job_id)
        if record is not None:
            self._catalog.save_job(replace(record, status=status, finished_at=utcnow(),
                                           error=error))
            # Its backup's instance, or the instance a replace would swap.
            self._services.gate.release_held(job_id)
        self._metrics.queued_jobs.dec()

    def running(self) -> int:
        with self._lock:
            return sum(1 for future in self._futures.values() if future.running())

    # --- stopping -------------------------------------------------------------------

    def shutdown(self, grace: float = 60.0, cancel_wait: float = 60.0) -> None:
        """Take no new work; let running jobs finish for ``grace`` seconds, then
        cancel them and wait up to ``cancel_wait`` for them to clean up. Jobs
        still queued are recorded as failed (cancelled), never left queued."""
        self._closing = True
        with self._lock:
            pending = list(self._futures.values())
        # Queued jobs have not started: mark them cancelled instead of starting them.
        self.cancel_queued()
        _, not_done = wait(pending, timeout=grace)
        if not_done:
            logger.warning("%d job(s) still running after %.0fs; cancelling them",
                           len(not_done), grace)
            self.cancel.set()
            _, not_done = wait(not_done, timeout=min(5.0, cancel_wait))
            if not_done:
                # Cancellation is seen between chunks; a dump stalled inside the
                # database (waiting on a lock) sends none, so cut its connection.
                cut = self._services.docker.abort_streams()
                logger.warning("cut %d stalled exec stream(s)", cut)
                wait(not_done, timeout=cancel_wait)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def cancel_queued(self) -> None:
        with self._lock:
            queued = [(job_id, future) for job_id, future in self._futures.items()
                      if not future.running() and not future.done()]
        for job_id, future in queued:
            if future.cancel():
                self._end_unstarted(job_id, JobStatus.FAILED,
                                    "cancelled: Holdfast shut down before it started")

