"""Background jobs: backups and restores the API accepts with 202 and runs later.

A small thread pool (``HOLDFAST_JOB_WORKERS``, default 2) bounds how many run at
once; the rest queue. Each job's life (queued, running, succeeded or failed,
with its result or one-line error) is recorded in the catalog, so ``GET
/v1/jobs/{id}`` works from any process reading the same catalog.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from backup.types import utcnow
from service.catalog import Catalog, JobRecord, JobStatus

logger = logging.getLogger(__name__)

JobWork = Callable[[], dict[str, Any]]


def new_job_id() -> str:
    return f"job-{utcnow().strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"


class JobRunner:
    def __init__(self, catalog: Catalog, workers: int) -> None:
        self._catalog = catalog
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers),
                                        thread_name_prefix="holdfast-job")

    def submit(self, kind: str, work: JobWork, *, instance: str | None = None,
               snapshot_id: str | None = None) -> JobRecord:
        job = JobRecord(id=new_job_id(), kind=kind, status=JobStatus.QUEUED,
                        created_at=utcnow(), instance=instance, snapshot_id=snapshot_id)
        self._catalog.add_job(job)
        self._pool.submit(self._run, job, work)
        return job

    def _run(self, job: JobRecord, work: JobWork) -> None:
        job = replace(job, status=JobStatus.RUNNING, started_at=utcnow())
        self._catalog.save_job(job)
        try:
            result = work()
        except Exception as exc:  # a job's failure is recorded, never lost in a thread
            logger.error("job %s (%s) failed: %s", job.id, job.kind, exc,
                         extra={"job": job.id, "instance": job.instance})
            self._catalog.save_job(replace(job, status=JobStatus.FAILED, finished_at=utcnow(),
                                           error=str(exc) or type(exc).__name__))
            return
        self._catalog.save_job(replace(
            job, status=JobStatus.SUCCEEDED, finished_at=utcnow(), result=result,
            snapshot_id=result.get("snapshot_id", result.get("id", job.snapshot_id)),
        ))

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
