"""``/v1/jobs``: the state of backups, restores and clones started through the API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.entrypoints.api.deps import AUTHORISED, ServicesDep
from service.entrypoints.api.openapi import errors
from service.usecases import jobs

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=AUTHORISED)


@router.get("/{job_id}", responses=errors(404))
def get_job(svc: ServicesDep, job_id: str) -> dict[str, Any]:
    """A job's status, and its result or error once finished."""
    return jobs.get_job(svc, job_id).to_json()
