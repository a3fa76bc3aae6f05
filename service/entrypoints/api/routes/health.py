"""Liveness, readiness and Prometheus metrics: open, without a token."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.entrypoints.api.deps import ContextDep, ServicesDep
from service.usecases.health import readiness
from service.version import holdfast_version

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up, and its version."""
    return {"status": "ok", "version": holdfast_version()}


@router.get("/readyz", responses={503: {"description": "Not ready: the same report, "
                                                  "naming what fails"}})
def readyz(svc: ServicesDep) -> JSONResponse:
    """The catalog and the Docker engine are reachable, and (in the daemon) discovery
    and the scheduler are working; 503 names each that is not."""
    report = readiness(svc)
    return JSONResponse(status_code=200 if report.ready else 503, content=report.to_json())


@router.get("/metrics")
def prometheus_metrics(ctx: ContextDep) -> Response:
    """Prometheus metrics."""
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
