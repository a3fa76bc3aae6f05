"""``/v1/snapshots``: list, look up, delete and restore snapshots. Wherever a route
takes ``{snapshot_id}``, an unambiguous prefix of one (6 characters or more) will do."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from fastapi.responses import Response

from service.entrypoints.api.deps import AUTHORISED, JobsDep, ServicesDep
from service.entrypoints.api.openapi import errors
from service.entrypoints.api.schemas import RestoreBody
from service.usecases import restores, snapshots

router = APIRouter(prefix="/v1/snapshots", dependencies=AUTHORISED)


@router.get("", tags=["snapshots"])
def list_snapshots(svc: ServicesDep,
                   instance: Annotated[str | None, Query()] = None) -> list[dict[str, Any]]:
    """Snapshots, newest first, optionally of one instance."""
    return [s.to_json() for s in snapshots.list_snapshots(svc, instance)]


@router.get("/{snapshot_id}", tags=["snapshots"], responses=errors(400, 404))
def get_snapshot(svc: ServicesDep, snapshot_id: str) -> dict[str, Any]:
    """One snapshot."""
    return snapshots.get_snapshot(svc, snapshot_id).to_json()


@router.delete("/{snapshot_id}", tags=["snapshots"], status_code=status.HTTP_204_NO_CONTENT,
               responses=errors(400, 404, 409))
def delete_snapshot(svc: ServicesDep, snapshot_id: str) -> Response:
    """Delete a snapshot's data, manifest and catalog entry."""
    snapshots.delete_snapshot(svc, snapshot_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{snapshot_id}/restore", tags=["restores"], status_code=status.HTTP_202_ACCEPTED,
             responses=errors(400, 404, 409))
def start_restore(svc: ServicesDep, jobs: JobsDep, snapshot_id: str,
                  body: RestoreBody) -> dict[str, Any]:
    """Restore a snapshot into a fresh container; returns the job to poll."""
    request = restores.prepare_restore(svc, snapshot_id, body.name, body.image, body.force,
                                       options=body.options())
    return jobs.submit_restore(request).to_json()
