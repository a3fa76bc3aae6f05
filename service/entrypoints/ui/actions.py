"""The dashboard's buttons: back up, pin, unpin, delete, verify, restore, cancel, clone, remove.

Each is a POST from htmx carrying the session's CSRF token; it checks the
scope the matching ``/v1`` route needs (the same scope, so a read-only token
is refused here as there), calls the same use case, and answers the fragment
that replaces the button's row or shows the job it started.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from backup.types import Snapshot
from service.entrypoints.api.deps import ContextDep
from service.entrypoints.api.routes.jobs import cancel_scope
from service.entrypoints.api.schemas import BackupBody, RestoreBody, backup_request
from service.entrypoints.ui.deps import DashboardDep, SessionDep, require
from service.entrypoints.ui.rendering import DashboardRoute
from service.records import JobRecord
from service.tokens import Scope
from service.usecases import (
    cancellation,
    checkpoints,
    fleet,
    job_queries,
    restores,
    snapshots,
    volumes,
)

router = APIRouter(prefix="/ui", route_class=DashboardRoute, include_in_schema=False)


def _job(request: Request, ui: DashboardDep, who: SessionDep, job: JobRecord) -> HTMLResponse:
    return ui.page(request, "fragments/job.html", 202, session=who, job=job)


def _snapshot_row(request: Request, ui: DashboardDep, who: SessionDep,
                  snapshot: Snapshot) -> HTMLResponse:
    return ui.page(request, "fragments/snapshot_row.html", session=who, snapshot=snapshot)


@router.post("/instances/{name}/backup", response_class=HTMLResponse)
def back_up(request: Request, ctx: ContextDep, who: SessionDep, ui: DashboardDep,
            name: str) -> HTMLResponse:
    require(who, Scope.BACKUP)
    asked = BackupBody()  # here or queued for the instance's host, as through the API
    job = fleet.start_backup(ctx.services, ctx.jobs, name, asked.options(),
                             request=backup_request(name, asked))
    return _job(request, ui, who, job)


@router.post("/snapshots/{snapshot_id}/pin", response_class=HTMLResponse)
def pin(request: Request, ctx: ContextDep, who: SessionDep, ui: DashboardDep,
        snapshot_id: str) -> HTMLResponse:
    require(who, Scope.BACKUP)
    return _snapshot_row(request, ui, who, checkpoints.pin_snapshot(ctx.services, snapshot_id))


@router.post("/snapshots/{snapshot_id}/unpin", response_class=HTMLResponse)
def unpin(request: Request, ctx: ContextDep, who: SessionDep, ui: DashboardDep,
          snapshot_id: str) -> HTMLResponse:
    require(who, Scope.BACKUP)
    return _snapshot_row(request, ui, who,
                         checkpoints.unpin_snapshot(ctx.services, snapshot_id))


@router.post("/snapshots/{snapshot_id}/delete", response_class=HTMLResponse)
def delete(ctx: ContextDep, who: SessionDep, snapshot_id: str) -> HTMLResponse:
    require(who, Scope.ADMIN)
    snapshots.delete_snapshot(ctx.services, snapshot_id)
    return HTMLResponse("")  # the row is swapped for nothing


@router.post("/snapshots/{snapshot_id}/verify", response_class=HTMLResponse)
def verify_restore(request: Request, ctx: ContextDep, who: SessionDep, ui: DashboardDep,
                   snapshot_id: str) -> HTMLResponse:
    require(who, Scope.RESTORE)
    # Here or queued for the snapshot's instance's host, as through the API.
    job = fleet.start_verified_restore(ctx.services, ctx.jobs, snapshot_id)
    return _job(request, ui, who, job)


@router.post("/snapshots/{snapshot_id}/check", response_class=HTMLResponse)
def check_object(request: Request, ctx: ContextDep, who: SessionDep, ui: DashboardDep,
                 snapshot_id: str) -> HTMLResponse:
    require(who, Scope.READ)
    job = fleet.start_verify(ctx.services, ctx.jobs, snapshot_id)
    return _job(request, ui, who, job)


@router.post("/snapshots/{snapshot_id}/restore", response_class=HTMLResponse)
def restore(request: Request, ctx: ContextDep, who: SessionDep, ui: DashboardDep,
            snapshot_id: str) -> HTMLResponse:
    require(who, Scope.RESTORE)
    body = restore_body(request.state.form)
    plan = restores.prepare_restore(ctx.services, snapshot_id, body.name, body.image, body.force,
                                    options=body.options(), replace=body.replace)
    return _job(request, ui, who, ctx.jobs.submit_restore(plan))


def restore_body(form: dict[str, str]) -> RestoreBody:
    """The restore dialog's fields as the API's body (validated the same way).
    ``mode=replace`` swaps the copy in for the source's container."""
    replacing = form.get("mode") == "replace"
    publish = form.get("publish") or None
    return RestoreBody.model_validate({
        "name": None if replacing else (form.get("name") or None),
        "replace": form.get("replace") or None if replacing else None,
        "ttl": None if replacing else (form.get("ttl") or None),
        "network": form.get("network") or None,
        "publish": int(publish) if publish is not None and publish.isdigit() else publish,
    })


@router.post("/jobs/{job_id}/cancel", response_class=HTMLResponse)
def cancel(request: Request, ctx: ContextDep, who: SessionDep, ui: DashboardDep,
           job_id: str) -> HTMLResponse:
    require(who, cancel_scope(job_queries.get_job(ctx.services, job_id).kind))
    outcome = cancellation.cancel_job(ctx.services, ctx.jobs, job_id)
    return ui.page(request, "fragments/job.html", session=who, job=outcome.job)


@router.post("/volumes/{name}/clone", response_class=HTMLResponse)
def clone(request: Request, ctx: ContextDep, who: SessionDep, ui: DashboardDep,
          name: str) -> HTMLResponse:
    require(who, Scope.RESTORE)
    plan = volumes.prepare_clone(ctx.services, name, request.state.form.get("target", ""))
    return _job(request, ui, who, ctx.jobs.submit_clone(plan))


@router.post("/volumes/{name}/remove", response_class=HTMLResponse)
def remove(ctx: ContextDep, who: SessionDep, name: str) -> HTMLResponse:
    require(who, Scope.ADMIN)
    volumes.remove_volume(ctx.services, name)
    return HTMLResponse("")
