"""``/v1/targets``: the storage targets' health, and verification of all they hold."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from fastapi.responses import JSONResponse

from service.entrypoints.api.deps import AUTHORISED, READ, JobsDep, ServicesDep
from service.entrypoints.api.job_waits import (
    JOB_RESPONSES,
    IdempotencyKey,
    Timeout,
    Wait,
    answer_with_job,
)
from service.entrypoints.api.openapi import errors
from service.entrypoints.api.responses import Job, TargetCheck
from service.records import JobRecord
from service.usecases import integrity, targets
from service.usecases.idempotency import Idempotency, idempotency_for

router = APIRouter(prefix="/v1/targets", tags=["targets"], dependencies=AUTHORISED)


@router.get("/check", dependencies=READ, response_model=list[TargetCheck])
def check_targets(svc: ServicesDep, name: Annotated[list[str] | None, Query(
        description="only this target (repeatable); default: every configured one")] = None,
) -> list[dict[str, Any]]:
    """Write, read back and delete a probe object in each configured target."""
    return [result.to_json() for result in targets.check_targets(svc, name)]


@router.post("/{name}/verify", status_code=status.HTTP_202_ACCEPTED, dependencies=READ,
             response_model=Job, responses={**JOB_RESPONSES, **errors(400, 404, 409)})
async def start_verify_target(svc: ServicesDep, jobs: JobsDep, name: str,
                              idempotency_key: IdempotencyKey = None, wait: Wait = False,
                              timeout: Timeout = None) -> JSONResponse:
    """Verify every snapshot in target ``name`` as ``POST /v1/snapshots/{id}/verify``
    does, and report missing, short and corrupt objects, manifests that do not
    parse, complete snapshots without a manifest, and objects no manifest claims.
    Without HOLDFAST_IDENTITY_FILE, encrypted objects are checked for size and
    sha256 only (the report's summary says how many). 202 + the job, as a restore."""
    idempotency = idempotency_for(idempotency_key, "verify-target", f"targets/{name}/verify",
                                  None)

    def start(idempotency: Idempotency | None) -> JobRecord:
        return integrity.submit_verify_target(
            svc, jobs, integrity.prepare_verify_target(svc, name), idempotency)

    return await answer_with_job(jobs, idempotency, start, wait=wait, timeout=timeout)
