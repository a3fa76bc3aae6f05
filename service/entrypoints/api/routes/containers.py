"""``/v1/containers``: what Holdfast does to a container by name; for now, undoing a replace.

``POST /v1/containers/{name}/undo-replace`` swaps back what a restore with
``replace`` did: the newest ``NAME-replaced-<time>`` gets the name back and is
started (the call returns once it accepts connections, when its engine can
tell), and the container called ``NAME`` until then is stopped and kept as
``NAME-undone-<time>`` with its volumes. It runs in the request, not as a job:
it stops one container and starts another.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from backup.names import CONTAINER_NAME_PATTERN
from service.entrypoints.api.deps import AUTHORISED, RESTORE, ServicesDep
from service.entrypoints.api.openapi import errors
from service.usecases import replace

router = APIRouter(prefix="/v1/containers", tags=["restores"], dependencies=AUTHORISED)


class SetAsideOut(BaseModel):
    """A container kept aside, stopped, with its volumes."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"container": "prod-db-undone-20261203T061500Z", "container_id": "9e0f1a2b3c4d",
         "status": "stopped"}]})

    container: str = Field(examples=["prod-db-undone-20261203T061500Z"])
    container_id: str
    status: str = Field(examples=["stopped"])


class UndoReplaceOut(BaseModel):
    """The container back under its name, and the one it displaced."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"container": "prod-db", "container_id": "4f1c2d3e5a6b",
         "restored_from": "prod-db-replaced-20261203T054500Z",
         "set_aside": {"container": "prod-db-undone-20261203T061500Z",
                       "container_id": "9e0f1a2b3c4d", "status": "stopped"}}]})

    container: str = Field(examples=["prod-db"])
    container_id: str
    restored_from: str = Field(examples=["prod-db-replaced-20261203T054500Z"],
                               description="the name it had while set aside")
    set_aside: SetAsideOut | None = Field(description="the container called NAME until "
                                          "now, kept stopped; null if there was none")


@router.post("/{name}/undo-replace", dependencies=RESTORE, responses=errors(400, 404, 409))
def undo_replace(svc: ServicesDep, name: Annotated[str, Path(
        description="the container a restore with `replace` replaced",
        json_schema_extra={"pattern": CONTAINER_NAME_PATTERN})]) -> UndoReplaceOut:
    """Swap the newest container a replace of ``name`` set aside back in."""
    return UndoReplaceOut.model_validate(replace.undo_replace(svc, name).to_json())
