"""Liveness, readiness and Prometheus metrics: open, without a token
(``/metrics`` needs one with ``read`` under ``HOLDFAST_METRICS_TOKEN_REQUIRED``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.entrypoints.api.deps import ContextDep, ServicesDep, principal
from service.entrypoints.api.openapi import errors
from service.entrypoints.api.responses import METRICS_EXAMPLE, Health, Ready
from service.tokens import Scope
from service.usecases.health import readiness
from service.version import holdfast_version

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> dict[str, str]:
    """The process is up, and its version."""
    return {"status": "ok", "version": holdfast_version()}


@router.get("/readyz", response_model=Ready,
            responses={503: {"model": Ready, "description": "Not ready: the same report, "
                                                            "naming what fails"}})
def readyz(svc: ServicesDep) -> JSONResponse:
    """The catalog and the Docker engine are reachable, and (in the daemon) discovery
    and the scheduler are working; 503 names each that is not."""
    report = readiness(svc)
    return JSONResponse(status_code=200 if report.ready else 503, content=report.to_json())


def metrics_guard(request: Request, svc: ServicesDep) -> None:
    """With ``HOLDFAST_METRICS_TOKEN_REQUIRED=true``, a token with ``read`` (401/403)."""
    if svc.settings.metrics_token_required:
        principal(request, svc).require(Scope.READ)


@router.get("/metrics", dependencies=[Depends(metrics_guard)], response_class=Response,
            responses={200: {"description": "Prometheus' text exposition format",
                             "content": {CONTENT_TYPE_LATEST: {
                                 "schema": {"type": "string"}, "example": METRICS_EXAMPLE}}},
                       **errors(401, 403)})
def prometheus_metrics(ctx: ContextDep) -> Response:
    """Prometheus metrics; open unless the daemon has HOLDFAST_METRICS_TOKEN_REQUIRED=true
    (then a token with the `read` scope: 401 without one, 403 without the scope)."""
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
