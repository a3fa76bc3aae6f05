"""Reading jobs as the catalog records them: one by id, or the newest, filtered.

Any process that reads the catalog sees the same jobs, whichever daemon or
CLI ran them; :mod:`.jobs` is what runs them.
"""

from __future__ import annotations

from collections.abc import Iterable

from backup.errors import InvalidInput, JobNotFound
from service.bootstrap import Services
from service.records import JobRecord, JobStatus


def get_job(svc: Services, job_id: str) -> JobRecord:
    """A job as the catalog records it; any process reading the catalog sees it."""
    record = svc.catalog.get_job(job_id)
    if record is None:
        raise JobNotFound(f"no job {job_id!r}; job ids come from the POST that started them")
    return record


MAX_JOB_LIST = 1000
"""The most jobs one listing returns."""


def list_jobs(svc: Services, *, kind: str | None = None,
              statuses: Iterable[JobStatus] | None = None, instance: str | None = None,
              limit: int = 100) -> list[JobRecord]:
    """The newest ``limit`` jobs (1 to :data:`MAX_JOB_LIST`), newest first,
    optionally of one kind and instance and in any of ``statuses``."""
    if not 1 <= limit <= MAX_JOB_LIST:
        raise InvalidInput(f"limit must be 1 to {MAX_JOB_LIST}, not {limit}")
    wanted = list(statuses or ())
    return svc.catalog.list_jobs(limit, wanted or None, kind=kind, instance=instance)
