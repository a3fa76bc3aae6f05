"""``/v1/warm`` and ``/v1/instances/{name}/warm``: warm copies, listed, refreshed, removed.

A warm copy is a stopped restored copy of an instance; a restore of the
snapshot it holds clones its volumes instead of streaming (:mod:`restore.warm`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from service.entrypoints.api.copy_responses import WarmCopy
from service.entrypoints.api.deps import AUTHORISED, READ, RESTORE, JobsDep, ServicesDep
from service.entrypoints.api.openapi import errors
from service.entrypoints.api.responses import Job
from service.entrypoints.api.schemas import WarmBody
from service.usecases import warm, warm_copies

router = APIRouter(prefix="/v1", tags=["warm copies"], dependencies=AUTHORISED)


@router.get("/warm", dependencies=READ, response_model=list[WarmCopy], responses=errors(400))
def list_warm(svc: ServicesDep, instance: str | None = None) -> list[dict[str, Any]]:
    """The warm copies on the engine (of ``instance``), newest refresh first."""
    return [w.to_json() for w in warm_copies.list_warm_copies(svc, instance)]


@router.post("/instances/{name}/warm", status_code=status.HTTP_202_ACCEPTED,
             dependencies=RESTORE, response_model=Job, response_model_exclude_unset=True,
             responses=errors(400, 404, 409))
def refresh_warm(svc: ServicesDep, jobs: JobsDep, name: str,
                 body: WarmBody | None = None) -> dict[str, Any]:
    """Make the instance's warm copy hold ``snapshot`` (default: the newest that
    passed a verified restore); returns the job to poll. The older warm copies
    are removed once the new one is ready."""
    refresh = warm.prepare_warm_refresh(svc, name, body.snapshot if body else None)
    return warm.start_warm_refresh(svc, jobs, refresh).to_json()


@router.delete("/instances/{name}/warm", dependencies=RESTORE, response_model=list[WarmCopy],
               responses=errors(400, 409))
def remove_warm(svc: ServicesDep, name: str) -> list[dict[str, Any]]:
    """Remove the instance's warm copies (containers and their volumes)."""
    return [w.to_json() for w in warm_copies.remove_warm_copies(svc, name)]
