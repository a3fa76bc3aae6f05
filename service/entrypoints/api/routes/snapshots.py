"""``/v1/snapshots``: list, look up, delete, restore and verify snapshots (their
stored objects, or by a verified restore). Wherever a route
takes ``{snapshot_id}``, an unambiguous prefix of one (6 characters or more) will do."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from fastapi.responses import JSONResponse, Response

from backup.tags import parse_tag_args
from service.entrypoints.api.deps import (
    ADMIN,
    AUTHORISED,
    BACKUP,
    READ,
    RESTORE,
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
from service.entrypoints.api.responses import Job, Snapshot
from service.entrypoints.api.schemas import RestoreBody, restore_request
from service.records import JobRecord
from service.usecases import checkpoints, fleet, snapshots
from service.usecases.idempotency import Idempotency, idempotency_for

router = APIRouter(prefix="/v1/snapshots", dependencies=AUTHORISED)


@router.get("", tags=["snapshots"], dependencies=READ, response_model=list[Snapshot],
            responses=errors(400))
def list_snapshots(
    svc: ServicesDep,
    instance: Annotated[str | None, Query()] = None,
    tag: Annotated[list[str] | None, Query(
        description="only snapshots carrying this tag, as KEY:VALUE (split at the first "
                    "':', so the value may hold more); repeat it and every tag must match",
        examples=["release:v1.4.2"])] = None,
) -> list[dict[str, Any]]:
    """Snapshots, newest first, optionally of one instance and carrying tags."""
    wanted = parse_tag_args(tag, ":")
    return [s.to_json() for s in snapshots.list_snapshots(svc, instance, wanted)]


@router.get("/{snapshot_id}", tags=["snapshots"], dependencies=READ, response_model=Snapshot,
            responses=errors(400, 404))
def get_snapshot(svc: ServicesDep, snapshot_id: str) -> dict[str, Any]:
    """One snapshot."""
    return snapshots.get_snapshot(svc, snapshot_id).to_json()


@router.put("/{snapshot_id}/pin", tags=["snapshots"],
            dependencies=BACKUP, response_model=Snapshot,
            responses=errors(400, 404, 409))
def pin_snapshot(svc: ServicesDep, snapshot_id: str) -> dict[str, Any]:
    """Pin a complete snapshot: retention never removes it and it cannot be
    deleted until unpinned; the pin is kept in its manifest too. Answers the
    snapshot; pinning a pinned one changes nothing. 409 if it is not complete."""
    return checkpoints.pin_snapshot(svc, snapshot_id).to_json()


@router.delete("/{snapshot_id}/pin", tags=["snapshots"],
               dependencies=BACKUP, response_model=Snapshot,
               responses=errors(400, 404))
def unpin_snapshot(svc: ServicesDep, snapshot_id: str) -> dict[str, Any]:
    """Unpin a snapshot: its instance's retention policy applies to it again.
    Answers the snapshot; unpinning one not pinned changes nothing."""
    return checkpoints.unpin_snapshot(svc, snapshot_id).to_json()


@router.delete("/{snapshot_id}", tags=["snapshots"], status_code=status.HTTP_204_NO_CONTENT,
               dependencies=ADMIN,
               responses=errors(400, 404, 409))
def delete_snapshot(svc: ServicesDep, snapshot_id: str) -> Response:
    """Delete a snapshot's data, manifest and catalog entry."""
    snapshots.delete_snapshot(svc, snapshot_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{snapshot_id}/restore", tags=["restores"], status_code=status.HTTP_202_ACCEPTED,
             dependencies=RESTORE, response_model=Job,
             responses={**JOB_RESPONSES, **errors(400, 404, 409)})
async def start_restore(svc: ServicesDep, jobs: JobsDep, snapshot_id: str, body: RestoreBody,
                        idempotency_key: IdempotencyKey = None, wait: Wait = False,
                        timeout: Timeout = None) -> JSONResponse:
    """Restore a snapshot into a fresh container; returns the job (202), or with
    ``wait=true`` its final state (200). A retry with the same ``Idempotency-Key``
    returns the same job."""
    idempotency = idempotency_for(idempotency_key, "restore", f"snapshots/{snapshot_id}/restore",
                                  body.model_dump(mode="json"))

    def start(idempotency: Idempotency | None) -> JobRecord:
        return fleet.start_restore(svc, jobs, body.asked(snapshot_id),
                                   request=restore_request(body), idempotency=idempotency)

    return await answer_with_job(jobs, idempotency, start, wait=wait, timeout=timeout)


@router.post("/{snapshot_id}/verify", tags=["snapshots"], status_code=status.HTTP_202_ACCEPTED,
             dependencies=READ, response_model=Job,
             responses={**JOB_RESPONSES, **errors(400, 404, 409)})
async def start_verify(svc: ServicesDep, jobs: JobsDep, snapshot_id: str,
                       idempotency_key: IdempotencyKey = None, wait: Wait = False,
                       timeout: Timeout = None) -> JSONResponse:
    """Re-read a snapshot's stored object and check its size, sha256, that it
    decrypts (with the daemon's HOLDFAST_IDENTITY_FILE), decompresses and that
    its framing is whole, without restoring; returns the job (202), or with
    ``wait=true`` its final state (200). The job succeeds with the report as its
    result, ``whole: false`` if a check failed. Read scope: it changes nothing.
    400 if the snapshot is encrypted and the daemon has no identity that opens it.
    A snapshot of another host's instance is queued for that host (503 if it is
    down), which runs it as the same job."""
    idempotency = idempotency_for(idempotency_key, "verify", f"snapshots/{snapshot_id}/verify",
                                  None)

    def start(idempotency: Idempotency | None) -> JobRecord:
        return fleet.start_verify(svc, jobs, snapshot_id, idempotency=idempotency)

    return await answer_with_job(jobs, idempotency, start, wait=wait, timeout=timeout)


@router.post("/{snapshot_id}/verify-restore", tags=["snapshots"],
             status_code=status.HTTP_202_ACCEPTED, dependencies=RESTORE, response_model=Job,
             responses={**JOB_RESPONSES, **errors(400, 404, 409)})
async def start_verified_restore(svc: ServicesDep, jobs: JobsDep, snapshot_id: str,
                                 idempotency_key: IdempotencyKey = None, wait: Wait = False,
                                 timeout: Timeout = None) -> JSONResponse:
    """Restore a snapshot into a throwaway container on an internal network of
    its own, compare what it holds with the figures recorded at backup time,
    remove it, and record the verdict on the snapshot; returns the job (202), or
    with ``wait=true`` its final state (200). The job succeeds with ``result:
    failed`` when the snapshot does not restore or its copy differs. Restore
    scope: it runs a restore. 409 while one of the instance is queued or runs.
    A snapshot of another host's instance is queued for that host (503 if it is
    down), whose engine runs it as the same job."""
    idempotency = idempotency_for(idempotency_key, "verify-restore",
                                  f"snapshots/{snapshot_id}/verify-restore", None)

    def start(idempotency: Idempotency | None) -> JobRecord:
        return fleet.start_verified_restore(svc, jobs, snapshot_id, idempotency=idempotency)

    return await answer_with_job(jobs, idempotency, start, wait=wait, timeout=timeout)
