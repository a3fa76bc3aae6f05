"""``/v1/hosts``: the Docker engines of the fleet, each with its daemon's last heartbeat.

Each daemon registers its engine as a host in the catalog it shares with the
others (:mod:`service.hosts`); this lists them all, whichever daemon answers.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from service.entrypoints.api.deps import AUTHORISED, READ, ServicesDep
from service.entrypoints.api.openapi import errors
from service.usecases import hosts

router = APIRouter(prefix="/v1/hosts", tags=["hosts"], dependencies=AUTHORISED)


class HostOut(BaseModel):
    """One host: a Docker engine and the daemon that manages it."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "edge-1", "status": "alive", "engine_version": "24.0.7", "instances": 3,
         "started_at": "2026-12-05T08:00:00Z", "last_heartbeat": "2026-12-05T09:14:45Z",
         "seconds_since_heartbeat": 4, "holdfast_version": "0.1.0"}]})

    name: str = Field(description="HOLDFAST_HOST_NAME, else the engine's own name")
    status: Literal["alive", "stale"] = Field(description="stale: three heartbeats missed")
    engine_version: str
    instances: int = Field(description="instances its daemon discovered, at its last beat")
    started_at: str = Field(description="when its daemon started")
    last_heartbeat: str
    seconds_since_heartbeat: int
    holdfast_version: str


@router.get("", dependencies=READ, response_model=list[HostOut], responses=errors())
def list_hosts(svc: ServicesDep) -> list[dict[str, Any]]:
    """Every host that registered in this catalog, by name."""
    return hosts.list_hosts(svc)
