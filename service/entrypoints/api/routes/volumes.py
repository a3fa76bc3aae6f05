"""``/v1/volumes``: named volumes, listed, created, removed and cloned."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from service.entrypoints.api.deps import ADMIN, AUTHORISED, READ, RESTORE, JobsDep, ServicesDep
from service.entrypoints.api.openapi import errors
from service.entrypoints.api.responses import Job, Volume
from service.entrypoints.api.schemas import CloneBody, VolumeBody
from service.usecases import volumes

router = APIRouter(prefix="/v1/volumes", tags=["volumes"], dependencies=AUTHORISED)


@router.get("", dependencies=READ, response_model=list[Volume], responses=errors(400, 409))
def list_volumes(svc: ServicesDep, sizes: bool = True) -> list[dict[str, Any]]:
    """Named volumes with size, the containers using them, and labels."""
    return [volume.to_json() for volume in volumes.list_volumes(svc, sizes=sizes)]


@router.get("/{name}", dependencies=READ, response_model=Volume, responses=errors(400, 404))
def get_volume(svc: ServicesDep, name: str) -> dict[str, Any]:
    """One volume."""
    return volumes.get_volume(svc, name).to_json()


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=ADMIN,
             response_model=Volume, responses=errors(400, 409))
def create_volume(svc: ServicesDep, body: VolumeBody) -> dict[str, Any]:
    """Create an empty named volume; an existing name is 409."""
    return volumes.create_volume(svc, body.name, body.labels).to_json()


@router.delete("/{name}", dependencies=ADMIN, response_model=Volume,
               responses=errors(400, 404, 409))
def remove_volume(svc: ServicesDep, name: str) -> dict[str, Any]:
    """Remove a volume; 409 while any container uses it."""
    return volumes.remove_volume(svc, name).to_json()


@router.post("/{name}/clone", status_code=status.HTTP_202_ACCEPTED, dependencies=RESTORE,
             response_model=Job, response_model_exclude_unset=True,
             responses=errors(400, 404, 409))
def clone_volume(svc: ServicesDep, jobs: JobsDep, name: str, body: CloneBody) -> dict[str, Any]:
    """Copy a volume into a new one (or, with ``force``, over an unused
    existing one); returns the job to poll. Bad input is refused at once."""
    plan = volumes.prepare_clone(svc, name, body.target, body.force)
    return jobs.submit_clone(plan).to_json()
