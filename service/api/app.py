"""The FastAPI application: routes, authentication and error mapping.

Routes parse input, call one use case and return its record's JSON, the same
shape the CLI prints with ``--json``. Errors from :mod:`backup.errors` are
mapped to HTTP statuses in one handler here; nothing below this module knows
about HTTP. If ``HOLDFAST_API_TOKEN`` is set, every ``/v1`` route requires
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request, status
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from backup import errors
from service import usecases, volumes
from service.bootstrap import Services
from service.catalog import JobRecord
from service.jobs import JobRunner, ShuttingDown
from service.metrics import Metrics
from service.runs import AlreadyRunning
from service.scheduler import Scheduler

_STATUS_FOR: list[tuple[type[errors.HoldfastError], int]] = [
    (errors.NotFound, status.HTTP_404_NOT_FOUND),
    (errors.Conflict, status.HTTP_409_CONFLICT),
    (errors.ContainerError, status.HTTP_409_CONFLICT),
    (errors.InvalidInput, status.HTTP_400_BAD_REQUEST),
    (errors.DockerUnavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
    (errors.StorageUnavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
    (ShuttingDown, status.HTTP_503_SERVICE_UNAVAILABLE),
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
    force: bool = Field(default=False, description="replace the contents of existing volumes "
                        "NAME-* (never of one a container uses)")


class VolumeBody(BaseModel):
    name: str = Field(description="name of the new volume")
    labels: dict[str, str] = Field(default_factory=dict)


class CloneBody(BaseModel):
    target: str = Field(description="name of the volume to copy into")
    force: bool = Field(default=False, description="replace the target's contents if it "
                        "exists (never while a container uses it)")


class PolicyBody(BaseModel):
    """Any subset of the labels' policy, in label syntax; given fields override the labels."""

    schedule: str | None = Field(default=None, examples=["@every 6h", "0 3 * * *"])
    retention: str | None = Field(default=None, examples=["last=3,daily=7"])
    target: str | None = None
    databases: str | None = Field(default=None, examples=["app,reports"])


def create_app(
    services: Services,
    jobs: JobRunner,
    *,
    scheduler: Scheduler | None = None,
    metrics: Metrics | None = None,
    refresh: Callable[[], object] | None = None,
    known_instances: Callable[[], list[usecases.Instance] | None] | None = None,
) -> FastAPI:
    """The API over ``services``. ``scheduler`` supplies next run times,
    ``metrics`` the /metrics registry, ``refresh`` re-runs discovery after a
    policy change so the scheduler picks it up at once, and ``known_instances``
    gives discovery's live view (None when it is not connected), which spares
    each listing a full pass over the Docker engine."""
    metrics = metrics or Metrics()
    app = FastAPI(
        title="Holdfast",
        version="0.1.0",
        description="Snapshots and restores of databases running in Docker containers.",
    )

    @app.exception_handler(errors.HoldfastError)
    async def _holdfast_error(_: Request, exc: errors.HoldfastError) -> JSONResponse:
        body: dict[str, Any] = {"error": str(exc), "type": type(exc).__name__}
        if isinstance(exc, AlreadyRunning):
            body["running"] = exc.holder
        return JSONResponse(status_code=http_status_for(exc), content=body)

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

    @app.get("/metrics", tags=["health"])
    def prometheus_metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def next_run(name: str, _schedule: str | None) -> Any:
        return scheduler.next_run(name) if scheduler is not None else None

    @app.get("/v1/instances", tags=["instances"], dependencies=auth)
    def instances() -> list[dict[str, Any]]:
        """Discovered instances: policy, next run, last snapshot and its status, errors."""
        known = known_instances() if known_instances is not None else None
        return [view.to_json() for view in usecases.list_instances(services, next_run, known)]

    @app.put("/v1/instances/{name}/policy", tags=["instances"], dependencies=auth)
    def put_policy(name: str, body: PolicyBody) -> dict[str, Any]:
        """Set a policy that overrides the labels and survives restarts."""
        usecases.set_policy(services, name, body.model_dump())
        return _after_policy_change(name)

    @app.delete("/v1/instances/{name}/policy", tags=["instances"], dependencies=auth)
    def delete_policy(name: str) -> dict[str, Any]:
        """Drop the API-set policy; the labels rule again."""
        usecases.set_policy(services, name, None)
        return _after_policy_change(name)

    def _after_policy_change(name: str) -> dict[str, Any]:
        if refresh is not None:
            refresh()
        views = [v for v in usecases.list_instances(services, next_run) if v.name == name]
        return views[0].to_json()

    @app.post("/v1/instances/{name}/prune", tags=["snapshots"], dependencies=auth)
    def prune_instance(name: str, dry_run: bool = False) -> dict[str, Any]:
        """Apply the instance's retention now (``dry_run`` lists what would go)."""
        return usecases.prune(services, name, dry_run=dry_run)[0].to_json()

    @app.post("/v1/instances/{name}/backups", tags=["backups"], dependencies=auth,
              status_code=status.HTTP_202_ACCEPTED)
    def start_backup(name: str, body: BackupBody | None = None) -> dict[str, Any]:
        """Start a snapshot of an instance now; returns the job to poll."""
        request = usecases.prepare_backup(services, name, body.target if body else None)
        return jobs.submit_backup(request).to_json()

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
        request = usecases.prepare_restore(services, snapshot_id, body.name, body.image,
                                           body.force)
        job = jobs.submit(
            "restore", lambda: usecases.execute_restore(services, request).to_json(),
            instance=request.snapshot.instance, snapshot_id=snapshot_id,
        )
        return job.to_json()

    @app.get("/v1/volumes", tags=["volumes"], dependencies=auth)
    def list_volumes(sizes: bool = True) -> list[dict[str, Any]]:
        """Named volumes with size, the containers using them, and labels."""
        return [volume.to_json() for volume in volumes.list_volumes(services, sizes=sizes)]

    @app.get("/v1/volumes/{name}", tags=["volumes"], dependencies=auth)
    def get_volume(name: str) -> dict[str, Any]:
        """One volume."""
        return volumes.get_volume(services, name).to_json()

    @app.post("/v1/volumes", tags=["volumes"], dependencies=auth,
              status_code=status.HTTP_201_CREATED)
    def create_volume(body: VolumeBody) -> dict[str, Any]:
        """Create an empty named volume; an existing name is 409."""
        return volumes.create_volume(services, body.name, body.labels).to_json()

    @app.delete("/v1/volumes/{name}", tags=["volumes"], dependencies=auth)
    def remove_volume(name: str) -> dict[str, Any]:
        """Remove a volume; 409 while any container uses it."""
        return volumes.remove_volume(services, name).to_json()

    @app.post("/v1/volumes/{name}/clone", tags=["volumes"], dependencies=auth,
              status_code=status.HTTP_202_ACCEPTED)
    def clone_volume(name: str, body: CloneBody) -> dict[str, Any]:
        """Copy a volume into a new one (or, with ``force``, over an unused
        existing one); returns the job to poll. Bad input is refused at once."""
        plan = volumes.prepare_clone(services, name, body.target, body.force)
        job = jobs.submit("clone", lambda: volumes.execute_clone(services, plan).to_json())
        return job.to_json()

    @app.get("/v1/targets/check", tags=["targets"], dependencies=auth)
    def targets_check() -> list[dict[str, Any]]:
        """Write, read back and delete a probe object in each configured target."""
        return [result.to_json() for result in usecases.check_targets(services)]

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
