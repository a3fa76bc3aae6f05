"""``/v1/copies``: the containers restores created, listed, and their TTL extended.

A copy is live until the daemon removes it when its TTL passes (its container
and the volumes its restore created, nothing else); ``PATCH`` sets a new TTL
counted from now.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from backup.types import utcnow
from restore.copies import CopyRecord
from service.entrypoints.api.deps import AUTHORISED, READ, RESTORE, ServicesDep
from service.entrypoints.api.openapi import errors
from service.usecases import copies

router = APIRouter(prefix="/v1/copies", tags=["copies"], dependencies=AUTHORISED)


class CopyOut(BaseModel):
    """A live copy: a container a restore created, with its expiry."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "ci-db", "container_id": "4f1c2d3e5a6b", "snapshot_id":
         "20261203T050000Z-prod-db-3f9a", "instance": "prod-db", "job_id": "job_0b6c2f8e4d1a",
         "volumes": ["ci-db-data"], "created_at": "2026-12-03T05:00:10Z",
         "expires_at": "2026-12-03T09:00:10Z", "seconds_left": 14390, "removed_at": None,
         "removal_error": None}]})

    name: str = Field(examples=["ci-db"])
    container_id: str
    snapshot_id: str
    instance: str
    job_id: str | None = Field(description="the restore job that made it (none from the CLI)")
    volumes: list[str] = Field(description="the volumes its restore created (removed with it)")
    created_at: str
    expires_at: str | None = Field(description="when the daemon removes it; null: never")
    seconds_left: int | None
    removed_at: str | None
    removal_error: str | None = Field(description="the last removal that failed, and why")


class ExtendBody(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"ttl": "2h"}]})

    ttl: str = Field(examples=["2h"], description="the new TTL, from now: 1m to 365d")


def _out(copy: CopyRecord, now: datetime) -> CopyOut:
    return CopyOut.model_validate(copy.to_json(now))


@router.get("", dependencies=READ)
def list_copies(svc: ServicesDep) -> list[CopyOut]:
    """Live copies, newest first, with their expiry and time left."""
    now = utcnow()
    return [_out(copy, now) for copy in copies.list_copies(svc)]


@router.get("/{name}", dependencies=READ, responses=errors(404))
def get_copy(svc: ServicesDep, name: str) -> CopyOut:
    """One live copy."""
    return _out(copies.get_copy(svc, name), utcnow())


@router.patch("/{name}", dependencies=RESTORE, responses=errors(404))
def extend_copy(svc: ServicesDep, name: str, body: ExtendBody) -> CopyOut:
    """Set the copy to expire ``ttl`` from now (longer or shorter than before)."""
    now = utcnow()
    return _out(copies.extend_copy(svc, name, body.ttl, now), now)
