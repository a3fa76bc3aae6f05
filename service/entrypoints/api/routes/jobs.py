"""``/v1/jobs``: the state of backups, restores and clones started through the API,
listed, one by one, and streamed as Server-Sent Events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from service.entrypoints.api.deps import AUTHORISED, READ, JobsDep, ServicesDep, principal
from service.entrypoints.api.job_waits import event_stream, stream_slots
from service.entrypoints.api.openapi import errors
from service.entrypoints.api.responses import Job, JobKind
from service.records import JobStatus
from service.tokens import Scope
from service.usecases import cancellation, job_queries

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=AUTHORISED)

SSE_EVENT_SCHEMA: dict[str, object] = {
    "type": "object", "required": ["event", "data"],
    "description": "One event of the stream as a client reads it (OpenAPI 3.1 has the schema "
                   "of text/event-stream describe each event)",
    "properties": {
        "event": {"type": "string", "enum": ["progress", "end"]},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "description": "the job's JSON, as GET /v1/jobs/{job_id} answers it"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
    "examples": [{"event": "progress", "data": '{"id": "job_0b6c2f8e4d1a", "kind": "backup", '
                  '"status": "running", "phase": "dumping", "bytes_done": 52428800, ...}'}],
}


@router.get("", dependencies=READ, response_model=list[Job], response_model_exclude_unset=True,
            responses=errors(400))
def list_jobs(
    svc: ServicesDep,
    kind: Annotated[JobKind | None,
                    Query(description="only jobs of this kind")] = None,
    job_status: Annotated[list[JobStatus] | None, Query(
        alias="status", description="only jobs in this status (repeat for several)")] = None,
    instance: Annotated[str | None, Query(description="only jobs of this instance")] = None,
    limit: Annotated[int, Query(ge=1, le=job_queries.MAX_JOB_LIST,
                                description="at most this many (1 to 1000)")] = 100,
) -> list[dict[str, Any]]:
    """Jobs, newest first: status, phase, bytes done, rate and ETA, result or error."""
    return [job.to_json() for job in job_queries.list_jobs(
        svc, kind=kind, statuses=job_status, instance=instance, limit=limit)]


@router.get("/{job_id}", dependencies=READ, response_model=Job, response_model_exclude_unset=True,
            responses=errors(404))
def get_job(svc: ServicesDep, job_id: str) -> dict[str, Any]:
    """A job's status and progress (``phase``, ``bytes_done``, ``rate`` in bytes/s,
    ``eta_seconds`` where the size is known), and its result or error once ended."""
    return job_queries.get_job(svc, job_id).to_json()


@router.get("/{job_id}/events", dependencies=READ, response_class=EventSourceResponse,
            responses={200: {"description": "Server-Sent Events: `progress` with the job's "
                                            "JSON on each change, then `end` with its final "
                                            "state; comments keep the stream alive",
                             "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}}},
                       **errors(404, 503)})
async def job_events(request: Request, runner: JobsDep, job_id: str) -> EventSourceResponse:
    """Stream the job until it ends (an ended job: one `end` event)."""
    job = await run_in_threadpool(runner.get, job_id)
    return event_stream(runner, job, stream_slots(request))


_CANCEL_SCOPE = {"backup": Scope.BACKUP, "restore": Scope.RESTORE,
                 "verify-restore": Scope.RESTORE, "verify": Scope.READ,
                 "verify-target": Scope.READ}
"""Cancelling a job needs the scope that starts jobs of its kind (clones: admin)."""


def cancel_scope(kind: str) -> Scope:
    """The scope that may cancel a job of ``kind`` (besides ``read``)."""
    return _CANCEL_SCOPE.get(kind, Scope.ADMIN)


@router.delete("/{job_id}", dependencies=READ, status_code=status.HTTP_202_ACCEPTED,
               response_model=Job,
               responses={200: {"model": Job, "description": "The job ended (normally "
                                                             "``cancelled``): its final state"},
                          202: {"model": Job, "description": "Cancelling: the job is still "
                                                             "stopping; poll it"},
                          **errors(404, 409)})
def cancel_job(request: Request, svc: ServicesDep, runner: JobsDep,
               job_id: str) -> JSONResponse:
    """Cancel a queued or running job; it leaves the clean state of a failure
    (partial objects, created containers and volumes removed). Answers 200 with
    the final job when it ends within 5 s, else 202 with it as it stands; 409 if
    it already ended. Needs ``read`` and the scope that starts jobs of its kind:
    ``backup`` or ``restore`` (``admin`` for a clone)."""
    kind = job_queries.get_job(svc, job_id).kind
    principal(request, svc).require(cancel_scope(kind))
    outcome = cancellation.cancel_job(svc, runner, job_id)
    return JSONResponse(status_code=status.HTTP_200_OK if outcome.ended
                        else status.HTTP_202_ACCEPTED, content=outcome.job.to_json())
