"""``/v1/prune`` and ``/v1/catalog/rebuild``: retention over every instance, and
the catalog rebuilt from the manifests: what ``holdfast prune`` (without an
instance) and ``holdfast catalog rebuild`` do, for the CLI with ``--server``.

Both run in the request (they list and delete objects, no long transfer) and
answer the use case's JSON, the shapes the CLI prints with ``--json``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from service.entrypoints.api.deps import ADMIN, AUTHORISED, BACKUP, ServicesDep
from service.entrypoints.api.openapi import errors
from service.entrypoints.api.responses import PruneResult
from service.usecases import retention, snapshots

router = APIRouter(prefix="/v1", dependencies=AUTHORISED)


class Rebuilt(BaseModel):
    """What a catalog rebuild found in the targets."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"added": 12, "updated": 0, "targets": {"local": 12}, "broken": [], "errors": {}}]})

    added: int
    updated: int
    targets: dict[str, int] = Field(description="manifests read per target")
    broken: list[str] = Field(description="snapshots whose data is gone, recorded as failed")
    errors: dict[str, str] = Field(description="targets that could not be read, and why")


@router.post("/prune", tags=["snapshots"], dependencies=BACKUP, response_model=list[PruneResult],
             responses=errors(400))
def prune_all(svc: ServicesDep, dry_run: bool = False) -> list[dict[str, Any]]:
    """Apply every instance's retention now (``dry_run`` lists what would go):
    failed snapshots and those the policy does not keep are deleted; the
    newest complete and pinned ones never are."""
    return [result.to_json() for result in retention.prune(svc, None, dry_run=dry_run)]


@router.post("/catalog/rebuild", tags=["snapshots"], dependencies=ADMIN,
             response_model=Rebuilt)
def rebuild_catalog(svc: ServicesDep) -> dict[str, Any]:
    """Recreate the catalog's snapshot rows from the manifests in every target;
    a target that cannot be read is named in ``errors`` and the others are
    still rebuilt."""
    return snapshots.rebuild_catalog(svc).to_json()
