"""The FastAPI application: routes, authentication and error mapping.

Routes parse input, call one use case and return its record's JSON, the same
shape the CLI prints with ``--json``. Errors from :mod:`backup.errors` are
mapped to HTTP statuses in one handler here; nothing below this module knows
about HTTP. If ``HOLDFAST_API_TOKEN`` is set, every ``/v1`` route requires
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from backup import errors
from service import usecases
from service.bootstrap import Services
from service.catalog import JobRecord
from service.jobs import JobRunner

_STATUS_FOR: list[tuple[type[errors.HoldfastError], int]] = [
    (errors.NotFound, status.HTTP_404_NOT_FOUND),
    (errors.Conflict, status.HTTP_409_CONFLICT),
    (errors.ContainerError, status.HTTP_409_CONFLICT),
    (errors.InvalidInput, status.HTTP_400_BAD_REQUEST),
    (errors.DockerUnavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
    (errors.StorageUnavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
    (errors.StoragePermissionDenied, status.HTTP_503_SERVICE_UNAVAILABLE),
]


def http_status_for(exc: errors.HoldfastError) -> int:
    for kind, code in _STATUS_FOR:
        if isinstance(exc, kind):
            return code
    return status.HTTP_500_INTERNAL_SERVER_ERROR


class BackupBody(BaseModel):
    target: str | None = Field(default=None, description="storage target; default: the label's")


class RestoreBody(BaseModel):
    name: str = Field(description="name of the fresh container to create")
    image: str | None = Field(default=None, description="image to use instead of the recorded one")


def create_app(services: Services, jobs: JobRunner) -> FastAPI:
    app = FastAPI(
        title="Holdfast",
        version="0.1.0",
        description="Snapshots and restores of databases running in Docker containers.",
    )

    @app.exception_handler(errors.HoldfastError)
    async def _holdfast_error(_: Request, exc: errors.HoldfastError) -> JSONResponse:
        return JSONResponse(status_code=http_status_for(exc),
                            content={"error": str(exc), "type": type(exc).__name__})

    def authorised(authorization: Annotated[str | None, Header()] = None) -> None:
        token = services.settings.api_token
        if token is None:
            return
        expected = f"Bearer {token.get_secret_value()}"
        if authorization is None or not hmac.compare_digest(authorization, expected):
            raise _Unauthorised()

    @app.exception_handler(_Unauthorised)
    async def _unauthorised(_: Request, __: _Unauthorised) -> JSONResponse:
        return JSONResponse(status_code=401, content={"error": "missing or wrong bearer token"},
                            headers={"WWW-Authenticate": "Bearer"})

    auth = [Depends(authorised)]

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """The catalog and the Docker engine are reachable."""
        checks: dict[str, str] = {}
        for name, probe in (("catalog", services.catalog.ping), ("docker", services.docker.ping)):
            try:
                probe()
                checks[name] = "ok"
            except errors.HoldfastError as exc:
                checks[name] = str(exc)
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse(status_code=200 if ready else 503,
                            content={"ready": ready, "checks": checks})

    @app.get("/v1/instances", tags=["instances"], dependencies=auth)
    def instances() -> list[dict[str, Any]]:
        """Discovered instances with their policy, engine, last snapshot and errors."""
        return [view.to_json() for view in usecases.list_instances(services)]

    @app.post("/v1/instances/{name}/backups", tags=["backups"], dependencies=auth,
              status_code=status.HTTP_202_ACCEPTED)
    def start_backup(name: str, body: BackupBody | None = None) -> dict[str, Any]:
        """Start a snapshot of an instance now; returns the job to poll."""
        request = usecases.prepare_backup(services, name, body.target if body else None)
        job = jobs.submit(
            "backup", lambda: usecases.execute_backup(services, request).to_json(),
            instance=name,
        )
        return job.to_json()

    @app.get("/v1/snapshots", tags=["snapshots"], dependencies=auth)
    def snapshots(instance: Annotated[str | None, Query()] = None) -> list[dict[str, Any]]:
        """Snapshots, newest first, optionally of one instance."""
        return [s.to_json() for s in usecases.list_snapshots(services, instance)]

    @app.get("/v1/snapshots/{snapshot_id}", tags=["snapshots"], dependencies=auth)
    def snapshot(snapshot_id: str) -> dict[str, Any]:
        """One snapshot."""
        return usecases.get_snapshot(services, snapshot_id).to_json()

    @app.delete("/v1/snapshots/{snapshot_id}", tags=["snapshots"], dependencies=auth,
                status_code=status.HTTP_204_NO_CONTENT)
    def delete_snapshot(snapshot_id: str) -> Response:
        """Delete a snapshot's data, manifest and catalog entry."""
        usecases.delete_snapshot(services, snapshot_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @app.post("/v1/snapshots/{snapshot_id}/restore", tags=["restores"], dependencies=auth,
              status_code=status.HTTP_202_ACCEPTED)
    def start_restore(snapshot_id: str, body: RestoreBody) -> dict[str, Any]:
        """Restore a snapshot into a fresh container; returns the job to poll."""
        request = usecases.prepare_restore(services, snapshot_id, body.name, body.image)
        job = jobs.submit(
            "restore", lambda: usecases.execute_restore(services, request).to_json(),
            instance=request.snapshot.instance, snapshot_id=snapshot_id,
        )
        return job.to_json()

    @app.get("/v1/jobs/{job_id}", tags=["jobs"], dependencies=auth)
    def job(job_id: str) -> dict[str, Any]:
        """A job's status, and its result or error once finished."""
        record: JobRecord | None = services.catalog.get_job(job_id)
        if record is None:
            raise errors.JobNotFound(f"no job {job_id!r}")
        return record.to_json()

    return app


class _Unauthorised(Exception):
    pass
