"""``/v1/jobs``: the state of backups, restores and clones started through the API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse

from service.entrypoints.api.deps import AUTHORISED, READ, JobsDep, ServicesDep, principal
from service.entrypoints.api.openapi import errors
from service.tokens import Scope
from service.usecases import cancellation, jobs

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=AUTHORISED)


@router.get("/{job_id}", dependencies=READ, responses=errors(404))
def get_job(svc: ServicesDep, job_id: str) -> dict[str, Any]:
    """A job's status, and its result or error once finished."""
    return jobs.get_job(svc, job_id).to_json()


_CANCEL_SCOPE = {"backup": Scope.BACKUP, "restore": Scope.RESTORE}
"""Cancelling a job needs the scope that starts jobs of its kind (clones: admin)."""


@router.delete("/{job_id}", dependencies=READ, status_code=status.HTTP_202_ACCEPTED,
               responses={200: {"description": "The job ended (normally ``cancelled``): "
                                               "its final state"},
                          202: {"description": "Cancelling: the job is still stopping; "
                                               "poll it"},
                          **errors(404, 409)})
def cancel_job(request: Request, svc: ServicesDep, runner: JobsDep,
               job_id: str) -> JSONResponse:
    """Cancel a queued or running job; it leaves the clean state of a failure
    (partial objects, created containers and volumes removed). Answers 200 with
    the final job when it ends within 5 s, else 202 with it as it stands; 409 if
    it already ended. Needs ``read`` and the scope that starts jobs of its kind:
    ``backup`` or ``restore`` (``admin`` for a clone)."""
    kind = jobs.get_job(svc, job_id).kind
    principal(request, svc).require(_CANCEL_SCOPE.get(kind, Scope.ADMIN))
    outcome = cancellation.cancel_job(svc, runner, job_id)
    return JSONResponse(status_code=status.HTTP_200_OK if outcome.ended
                        else status.HTTP_202_ACCEPTED, content=outcome.job.to_json())
