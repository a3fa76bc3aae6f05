"""The daemon's claims: requests other daemons queued for this host, started here.

Every ``HOLDFAST_CLAIM_INTERVAL`` seconds (default 0.5) a thread claims the
requests queued for this host in the catalog (:func:`service.usecases.fleet.claim_requests`),
parses each as the API parsed it where it was made, and starts it through the
same use case as a request made here, as the job it already is. A request
that cannot start (its instance gone, its input refused here) is recorded
failed with the reason; one bad request never stops the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from pydantic import ValidationError

from backup.errors import HoldfastError
from service.bootstrap import Services
from service.entrypoints.api.schemas import BackupBody, InstanceRestoreBody
from service.records import JobRecord
from service.usecases import fleet
from service.usecases.fleet_cancel import honour_cancel_requests
from service.usecases.jobs import JobRunner

logger = logging.getLogger(__name__)

BATCH = 16
"""Requests claimed at once; the runner's pool queues what it cannot start yet."""


def _backup(svc: Services, jobs: JobRunner, job: JobRecord) -> None:
    assert job.request is not None
    body = BackupBody.model_validate(job.request["body"])
    fleet.start_backup(svc, jobs, str(job.request["name"]), body.options(),
                       request=job.request, claimed=job)


def _restore(svc: Services, jobs: JobRunner, job: JobRecord) -> None:
    assert job.request is not None
    body = InstanceRestoreBody.model_validate(job.request["body"])
    fleet.start_restore(svc, jobs, body.asked(str(job.request["snapshot"])),
                        request=job.request, claimed=job)


def _verify(svc: Services, jobs: JobRunner, job: JobRecord) -> None:
    assert job.request is not None
    fleet.start_verify(svc, jobs, str(job.request["snapshot"]), claimed=job)


def _verified_restore(svc: Services, jobs: JobRunner, job: JobRecord) -> None:
    assert job.request is not None
    fleet.start_verified_restore(svc, jobs, str(job.request["snapshot"]), claimed=job)


STARTERS: dict[str, Callable[[Services, JobRunner, JobRecord], None]] = {
    "backup": _backup,
    "restore": _restore,
    "verify": _verify,
    "verify-restore": _verified_restore,
}
"""What each kind of request runs as (the kinds another daemon may queue)."""


class Claims:
    """Claims and starts this host's queued requests on a thread of its own."""

    def __init__(self, services: Services, jobs: JobRunner) -> None:
        self._services = services
        self._jobs = jobs
        self._stop = threading.Event()
        self._cancelled: set[str] = set()
        """Jobs another daemon asked this one to cancel, cancelled already."""
        self._thread = threading.Thread(target=self._loop, name="holdfast-claims", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def shutdown(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self._services.settings.claim_interval):
            try:
                self.poll()
            except HoldfastError as exc:  # the catalog away: the next look tries again
                logger.warning("could not look for requests queued for this host: %s", exc)

    def poll(self) -> int:
        """Claim and start what is queued for this host now, then cancel the jobs
        here another daemon was asked to cancel; how many were claimed."""
        claimed = fleet.claim_requests(self._services, BATCH)
        for job in claimed:
            self._start(job)
        honour_cancel_requests(self._services, self._jobs, self._cancelled)
        return len(claimed)

    def _start(self, job: JobRecord) -> None:
        kind = (job.request or {}).get("kind")
        starter = STARTERS.get(str(kind))
        try:
            if starter is None:
                raise HoldfastError(f"request kind {kind!r} is not one this Holdfast runs; "
                                    "upgrade this host's Holdfast")
            starter(self._services, self._jobs, job)
        except (HoldfastError, ValidationError, KeyError) as exc:
            fleet.refuse_request(self._services, job, exc)
