"""``/v1/targets``: the storage targets' health."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from service.entrypoints.api.deps import AUTHORISED, READ, ServicesDep
from service.entrypoints.api.responses import TargetCheck
from service.usecases import targets

router = APIRouter(prefix="/v1/targets", tags=["targets"], dependencies=AUTHORISED)


@router.get("/check", dependencies=READ, response_model=list[TargetCheck])
def check_targets(svc: ServicesDep, name: Annotated[list[str] | None, Query(
        description="only this target (repeatable); default: every configured one")] = None,
) -> list[dict[str, Any]]:
    """Write, read back and delete a probe object in each configured target."""
    return [result.to_json() for result in targets.check_targets(svc, name)]
