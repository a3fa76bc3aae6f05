"""Cancels across the fleet: a job asked to stop through a daemon other than its host's.

:func:`service.usecases.cancellation.cancel_job` cancels a request no host has
claimed yet in the catalog at once (:meth:`~service.ports.FleetWorkQueue.cancel_unclaimed`);
one its host already has is only marked (``cancel_requested_at``, through
:meth:`~service.ports.FleetWorkQueue.request_cancel`), since no other daemon
can reach that host's engine. The host's daemon looks for those marks each
time it looks for requests (every ``HOLDFAST_CLAIM_INTERVAL`` seconds, in its
claims thread) and cancels each marked job in its own runner
(:func:`honour_cancel_requests`), so the job stops and is recorded exactly as
one cancelled through this host's own API: ``cancelled``, "cancelled by
request", the clean state of a failure.
"""

from __future__ import annotations

import logging

from backup.errors import HoldfastError
from service.bootstrap import Services
from service.usecases.jobs import JobRunner

logger = logging.getLogger(__name__)

def honour_cancel_requests(svc: Services, jobs: JobRunner, told: set[str]) -> int:
    """Cancel in ``jobs`` (this daemon's runner) each of this host's jobs another
    daemon was asked to cancel; how many this call cancelled. ``told``: the
    caller's record of the jobs already cancelled (updated here), so a job is
    cancelled once, not again at every look while it cleans up. A job this
    runner does not have is left for the runner that has it. One job that
    cannot be cancelled (its engine away) does not keep the others running."""
    marked = svc.catalog.cancel_requests(svc.host_name())
    told.intersection_update(marked)  # those that ended are forgotten
    fresh = [job_id for job_id in marked if job_id not in told]
    cancelled = 0
    for job_id in fresh:
        try:
            if not jobs.cancel_job(job_id):
                continue
        except HoldfastError as exc:
            logger.warning("could not cancel job %s as another daemon asked: %s", job_id, exc,
                           extra={"job": job_id})
            continue
        logger.info("job %s cancelled: another daemon was asked to cancel it", job_id,
                    extra={"job": job_id})
        told.add(job_id)
        cancelled += 1
    return cancelled
