"""Cancelling a job (``DELETE /v1/jobs/{id}``): it stops and leaves the clean state of a failure.

A queued job is recorded ``cancelled`` at once and never starts. A running one
is signalled (:class:`backup.cancel.CancelSignal`, checked between chunks and
steps) and its own exec streams are cut, so a dump waiting on a lock inside the
database stops within seconds too (the cut process is killed in its
container). It then fails the way any failure does and cleans up the same way:
a backup's partial object is discarded by its target, its snapshot is marked
failed with the error ``cancelled``, its instance's gate is released and
retention does not run; a restore removes the container and the volumes it
created (never the source's); a clone removes the target volume it created.
The job ends ``cancelled`` with the error "cancelled by request".

The call waits up to :data:`CANCEL_WAIT` seconds for the job to end, so a
script usually gets the final job back (``ended``); a job still cleaning up
after that is returned as it stands. A job that already ended is a
:class:`JobEnded` conflict.

A job of another host of the fleet is cancelled through the catalog
(:mod:`service.usecases.fleet_cancel`): a request its host has not claimed yet
is recorded ``cancelled`` at once, in one step with the claim (its host never
starts it); one its host runs or has queued is marked, its host's daemon
cancels it when it next looks (within ``HOLDFAST_CLAIM_INTERVAL``), and the call
reads the catalog up to the same wait for it to end. A job of this host that
another process runs (a CLI run) cannot be signalled from here
(:class:`JobElsewhere`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from backup.errors import Conflict
from backup.types import utcnow
from service.bootstrap import Services
from service.records import JobRecord, is_unclaimed_request
from service.usecases import fleet
from service.usecases.job_queries import get_job
from service.usecases.jobs import CANCELLED_BY_REQUEST, JobRunner

logger = logging.getLogger(__name__)

CANCEL_WAIT = 5.0
"""Seconds a cancel waits for its job to end before answering with the job as it stands."""


class JobEnded(Conflict):
    """The job already succeeded, failed or was cancelled: nothing to stop."""


class JobElsewhere(Conflict):
    """The job is queued or running in another Holdfast process of this host
    (not a daemon of another host, which is asked through the catalog)."""


@dataclass(frozen=True)
class CancelOutcome:
    job: JobRecord
    ended: bool
    """True when ``job`` is final (cancelled, or it ended otherwise meanwhile);
    False while it is still stopping."""


def cancel_job(svc: Services, runner: JobRunner, job_id: str,
               wait: float | None = None) -> CancelOutcome:
    """Cancel job ``job_id`` of ``runner``, or of another host's daemon, and
    wait up to ``wait`` seconds (:data:`CANCEL_WAIT` by default) for it to end.
    Raises :class:`~backup.errors.JobNotFound`, :class:`JobEnded` or
    :class:`JobElsewhere`."""
    timeout = CANCEL_WAIT if wait is None else wait
    record = get_job(svc, job_id)
    _refuse_if_ended(record)
    if not runner.cancel_job(job_id):
        record = get_job(svc, job_id)
        _refuse_if_ended(record)  # it ended between the two looks
        if _of_another_host(svc, record):
            return _cancel_through_catalog(svc, record, timeout)
        raise JobElsewhere(f"job {job_id} is {record.status} in another Holdfast process "
                           "on this host; cancel it there (Ctrl-C of its command)")
    record = runner.wait(job_id, timeout)
    return CancelOutcome(job=record, ended=record.ended)


def _of_another_host(svc: Services, record: JobRecord) -> bool:
    """Whether ``record`` is a request not claimed yet (by any host, this one
    too) or a job another host's daemon runs."""
    return is_unclaimed_request(record) or (
        record.host is not None and record.host != svc.host_name())


def _cancel_through_catalog(svc: Services, record: JobRecord, timeout: float) -> CancelOutcome:
    """Cancel an unclaimed request at once, else ask its host's daemon to
    cancel the job and read the catalog up to ``timeout`` seconds for its end."""
    now = utcnow()
    cancelled = svc.catalog.cancel_unclaimed(record.id, now, CANCELLED_BY_REQUEST)
    if cancelled is not None:
        logger.info("job %s (%s of %s) for host %s cancelled before its host claimed it",
                    record.id, record.kind, record.instance, record.host,
                    extra={"job": record.id, "instance": record.instance})
        return CancelOutcome(job=cancelled, ended=True)
    if not svc.catalog.request_cancel(record.id, now):
        _refuse_if_ended(get_job(svc, record.id))  # it ended between the looks
    logger.info("job %s (%s of %s) on host %s: its daemon is asked to cancel it",
                record.id, record.kind, record.instance, record.host,
                extra={"job": record.id, "instance": record.instance})
    record = fleet.await_request(svc, get_job(svc, record.id), timeout=timeout)
    return CancelOutcome(job=record, ended=record.ended)


def _refuse_if_ended(record: JobRecord) -> None:
    if record.ended:
        raise JobEnded(f"job {record.id} already {record.status}; only a queued or running "
                       "job can be cancelled")
