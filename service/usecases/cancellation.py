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
:class:`JobEnded` conflict; one another process runs cannot be signalled from
here (:class:`JobElsewhere`).
"""

from __future__ import annotations

from dataclasses import dataclass

from backup.errors import Conflict
from service.bootstrap import Services
from service.records import JobRecord
from service.usecases.job_queries import get_job
from service.usecases.jobs import JobRunner

CANCEL_WAIT = 5.0
"""Seconds a cancel waits for its job to end before answering with the job as it stands."""


class JobEnded(Conflict):
    """The job already succeeded, failed or was cancelled: nothing to stop."""


class JobElsewhere(Conflict):
    """The job is queued or running in another Holdfast process on the catalog."""


@dataclass(frozen=True)
class CancelOutcome:
    job: JobRecord
    ended: bool
    """True when ``job`` is final (cancelled, or it ended otherwise meanwhile);
    False while it is still stopping."""


def cancel_job(svc: Services, runner: JobRunner, job_id: str,
               wait: float | None = None) -> CancelOutcome:
    """Cancel job ``job_id`` of ``runner`` and wait up to ``wait`` seconds
    (:data:`CANCEL_WAIT` by default) for it to end. Raises
    :class:`~backup.errors.JobNotFound`, :class:`JobEnded` or :class:`JobElsewhere`."""
    record = get_job(svc, job_id)
    _refuse_if_ended(record)
    if not runner.cancel_job(job_id):
        record = get_job(svc, job_id)
        _refuse_if_ended(record)  # it ended between the two looks
        raise JobElsewhere(f"job {job_id} is {record.status} in another Holdfast process; "
                           "cancel it through that daemon's API")
    record = runner.wait(job_id, CANCEL_WAIT if wait is None else wait)
    return CancelOutcome(job=record, ended=record.ended)


def _refuse_if_ended(record: JobRecord) -> None:
    if record.ended:
        raise JobEnded(f"job {record.id} already {record.status}; only a queued or running "
                       "job can be cancelled")
