"""``/v1/instances``: discovered instances, their API-set policy, retention, backups,
and restores of their newest complete snapshot."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse

from service.entrypoints.api.deps import (
    ADMIN,
    AUTHORISED,
    BACKUP,
    READ,
    RESTORE,
    ContextDep,
    JobsDep,
    ServicesDep,
)
from service.entrypoints.api.job_waits import (
    JOB_RESPONSES,
    IdempotencyKey,
    Timeout,
    Wait,
    answer_with_job,
)
from service.entrypoints.api.openapi import errors
from service.entrypoints.api.responses import Forgotten, Instance, Job, PruneResult
from service.entrypoints.api.schemas import (
    BackupBody,
    InstanceRestoreBody,
    PolicyBody,
    backup_request,
    restore_request,
)
from service.records import JobRecord
from service.usecases import fleet, instances, retention
from service.usecases.idempotency import Idempotency, idempotency_for

router = APIRouter(prefix="/v1/instances", dependencies=AUTHORISED)


@router.get("", tags=["instances"], dependencies=READ, response_model=list[Instance])
def list_instances(ctx: ContextDep) -> list[dict[str, Any]]:
    """Discovered instances: policy, next run, last snapshot and its status, errors."""
    known = ctx.known_instances() if ctx.known_instances is not None else None
    views = instances.list_instances(ctx.services, ctx.next_run, known)
    return [view.to_json() for view in views]


@router.delete("/{name}", tags=["instances"], dependencies=ADMIN, response_model=Forgotten,
                responses=errors(404, 409))
def forget_instance(svc: ServicesDep, name: str) -> dict[str, Any]:
    """Forget an instance: its record, policy and snapshot rows leave the catalog;
    the snapshots' objects stay in the targets (``holdfast catalog rebuild`` lists
    them again). 409 while it has a run in progress or its container is still
    labelled (it would be discovered again at once)."""
    return instances.forget_instance(svc, name).to_json()


@router.put("/{name}/policy", tags=["instances"], dependencies=BACKUP, response_model=Instance,
            responses=errors(400, 404))
def put_policy(ctx: ContextDep, name: str, body: PolicyBody) -> dict[str, Any]:
    """Set a policy that overrides the labels and survives restarts."""
    return instances.set_policy(ctx.services, name, body.model_dump(), applied=ctx.refresh,
                                next_run=ctx.next_run).to_json()


@router.delete("/{name}/policy", tags=["instances"], dependencies=BACKUP,
               response_model=Instance, responses=errors(404))
def delete_policy(ctx: ContextDep, name: str) -> dict[str, Any]:
    """Drop the API-set policy; the labels rule again."""
    return instances.set_policy(ctx.services, name, None, applied=ctx.refresh,
                                next_run=ctx.next_run).to_json()


@router.post("/{name}/prune", tags=["snapshots"], dependencies=BACKUP,
             response_model=PruneResult, responses=errors(400, 404))
def prune_instance(svc: ServicesDep, name: str, dry_run: bool = False) -> dict[str, Any]:
    """Apply the instance's retention now (``dry_run`` lists what would go)."""
    return retention.prune(svc, name, dry_run=dry_run)[0].to_json()


@router.post("/{name}/backups", tags=["backups"], status_code=status.HTTP_202_ACCEPTED,
             dependencies=BACKUP, response_model=Job,
             responses={**JOB_RESPONSES, **errors(400, 404, 409)})
async def start_backup(svc: ServicesDep, jobs: JobsDep, name: str,
                       body: BackupBody | None = None, idempotency_key: IdempotencyKey = None,
                       wait: Wait = False, timeout: Timeout = None) -> JSONResponse:
    """Start a snapshot of an instance now; returns the job (202), or with
    ``wait=true`` its final state (200). A retry with the same ``Idempotency-Key``
    returns the same job."""
    idempotency = idempotency_for(idempotency_key, "backup", f"instances/{name}/backups",
                                  (body or BackupBody()).model_dump(mode="json"))

    asked = body or BackupBody()

    def start(idempotency: Idempotency | None) -> JobRecord:
        return fleet.start_backup(svc, jobs, name, asked.options(),
                                  request=backup_request(name, asked), idempotency=idempotency)

    return await answer_with_job(jobs, idempotency, start, wait=wait, timeout=timeout)


@router.post("/{name}/restore", tags=["restores"], status_code=status.HTTP_202_ACCEPTED,
             dependencies=RESTORE, response_model=Job,
             responses={**JOB_RESPONSES, **errors(400, 404, 409)})
async def restore_latest(svc: ServicesDep, jobs: JobsDep, name: str,
                         body: InstanceRestoreBody, idempotency_key: IdempotencyKey = None,
                         wait: Wait = False, timeout: Timeout = None) -> JSONResponse:
    """Restore the instance's newest complete snapshot into a fresh container
    (the body of ``POST /v1/snapshots/{id}/restore``); the job names the snapshot used.
    ``wait`` and ``Idempotency-Key`` as for backups."""
    idempotency = idempotency_for(idempotency_key, "restore", f"instances/{name}/restore",
                                  body.model_dump(mode="json"))

    def start(idempotency: Idempotency | None) -> JobRecord:
        return fleet.start_restore(svc, jobs, body.asked(None, latest_of=name),
                                   request=restore_request(body), idempotency=idempotency)

    return await answer_with_job(jobs, idempotency, start, wait=wait, timeout=timeout)
