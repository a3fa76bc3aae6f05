"""Jobs between their records and their rows: which columns are copied as they are.

Shared by the repository and the fleet's work queue (:mod:`.fleet_work`), which
both hand out :class:`~service.records.JobRecord` values.
"""

from __future__ import annotations

from typing import Any

from service.adapters.catalog.models import JobRow
from service.records import JobRecord, JobStatus

# Job columns that are stored as they are, read as they are.
_JOB_PROGRESS = ("phase", "bytes_done", "bytes_total", "transfer_started_at", "progress_at",
                 "idempotency_key", "request_fingerprint", "host", "request", "lease_expires_at")
# Read as they are, never written from a record: a save of the job (its host's
# progress) must not clear what another daemon set. Only FleetWork writes them.
_JOB_SET_ELSEWHERE = ("cancel_requested_at",)


def job_values(j: JobRecord) -> dict[str, Any]:
    return {
        "id": j.id,
        "kind": j.kind,
        "status": str(j.status),
        "created_at": j.created_at,
        "instance": j.instance,
        "snapshot_id": j.snapshot_id,
        "started_at": j.started_at,
        "finished_at": j.finished_at,
        "error": j.error,
        "result": j.result,
        **{name: getattr(j, name) for name in _JOB_PROGRESS},
    }


def job_record(row: JobRow) -> JobRecord:
    return JobRecord(
        id=row.id,
        kind=row.kind,
        status=JobStatus(row.status),
        created_at=row.created_at,
        instance=row.instance,
        snapshot_id=row.snapshot_id,
        started_at=row.started_at,
        finished_at=row.finished_at,
        error=row.error,
        result=row.result,
        **{name: getattr(row, name) for name in (*_JOB_PROGRESS, *_JOB_SET_ELSEWHERE)},
    )
