"""The dashboard's pages: overview, instance, restore dialog, jobs, volumes, targets, sign-in.

Each reads the session, calls one use case and renders a template; a page
never decides anything itself (health, totals and chart series come from
:mod:`service.usecases.overview`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from backup.errors import HoldfastError
from backup.types import utcnow
from service.entrypoints.api.deps import ContextDep
from service.entrypoints.api.job_waits import event_stream, stream_slots
from service.entrypoints.api.problems import one_line
from service.entrypoints.error_table import http_status_for
from service.entrypoints.ui.deps import DashboardDep, SessionDep
from service.entrypoints.ui.rendering import DashboardRoute, safe_next
from service.entrypoints.ui.session import new_login_nonce, sign_in, sign_out
from service.usecases import job_queries, overview, snapshots, targets, volumes
from service.usecases.instances import Instance

router = APIRouter(prefix="/ui", route_class=DashboardRoute, include_in_schema=False)

RECENT_JOBS = 50


def _known(ctx: ContextDep) -> list[Instance] | None:
    return ctx.known_instances() if ctx.known_instances is not None else None


@router.get("", response_class=HTMLResponse)
def overview_page(request: Request, ctx: ContextDep, who: SessionDep,
                  ui: DashboardDep) -> HTMLResponse:
    now = utcnow()
    found = overview.overview(ctx.services, now, ctx.next_run, _known(ctx))
    return ui.page(request, "overview.html", session=who, overview=found, now=now,
                   page="overview")


@router.get("/instances/{name}", response_class=HTMLResponse)
def instance_page(request: Request, ctx: ContextDep, who: SessionDep, ui: DashboardDep,
                  name: str) -> HTMLResponse:
    now = utcnow()
    history = overview.instance_history(ctx.services, name, now, ctx.next_run, _known(ctx))
    return ui.page(request, "instance.html", session=who, history=history, now=now,
                   page="overview")


@router.get("/snapshots/{snapshot_id}/restore", response_class=HTMLResponse)
def restore_dialog(request: Request, ctx: ContextDep, who: SessionDep, ui: DashboardDep,
                   snapshot_id: str) -> HTMLResponse:
    snapshot = snapshots.get_snapshot(ctx.services, snapshot_id)
    defaults = overview.restore_defaults(ctx.services, snapshot)
    return ui.page(request, "fragments/restore.html", session=who, snapshot=snapshot,
                   defaults=defaults)


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, ctx: ContextDep, who: SessionDep,
              ui: DashboardDep) -> HTMLResponse:
    jobs = job_queries.list_jobs(ctx.services, limit=RECENT_JOBS)
    return ui.page(request, "jobs.html", session=who, jobs=jobs, now=utcnow(), page="jobs")


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_card(request: Request, ctx: ContextDep, who: SessionDep, ui: DashboardDep,
             job_id: str) -> HTMLResponse:
    job = job_queries.get_job(ctx.services, job_id)
    return ui.page(request, "fragments/job.html", session=who, job=job)


@router.get("/jobs/{job_id}/events")
async def job_events(request: Request, ctx: ContextDep, _: SessionDep, job_id: str) -> Response:
    job = await run_in_threadpool(ctx.jobs.get, job_id)
    return event_stream(ctx.jobs, job, stream_slots(request))


@router.get("/volumes", response_class=HTMLResponse)
def volumes_page(request: Request, ctx: ContextDep, who: SessionDep,
                 ui: DashboardDep) -> HTMLResponse:
    found = volumes.list_volumes(ctx.services, sizes=True)
    return ui.page(request, "volumes.html", session=who, volumes=found, page="volumes")


@router.get("/targets", response_class=HTMLResponse)
def targets_page(request: Request, ctx: ContextDep, who: SessionDep,
                 ui: DashboardDep) -> HTMLResponse:
    usage = overview.target_usage(ctx.services)
    return ui.page(request, "targets.html", session=who, usage=usage, page="targets")


@router.get("/targets/health", response_class=HTMLResponse)
def targets_health(request: Request, ctx: ContextDep, who: SessionDep,
                   ui: DashboardDep) -> HTMLResponse:
    checks = targets.check_targets(ctx.services)
    return ui.page(request, "fragments/target_health.html", session=who, checks=checks)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, ui: DashboardDep,
               next_path: Annotated[str | None, Query(alias="next")] = None) -> HTMLResponse:
    return _login_page(request, ui, safe_next(next_path), None)


@router.post("/login")
def login(request: Request, ctx: ContextDep, ui: DashboardDep) -> Response:
    form = request.state.form
    target = safe_next(form.get("next"))
    response = RedirectResponse(target, status_code=303)
    try:
        sign_in(request, ctx.services, form.get("token", ""), form.get("nonce", ""), response)
    except HoldfastError as refused:
        return _login_page(request, ui, target, str(refused), http_status_for(refused))
    return response


def _login_page(request: Request, ui: DashboardDep, target: str, message: str | None,
                status: int = 200) -> HTMLResponse:
    """The sign-in page with a fresh double-submit nonce (its cookie and its field)."""
    holder = Response()
    nonce = new_login_nonce(request, holder)
    page = ui.page(request, "login.html", status, session=None, next=target,
                   message=None if message is None else one_line(message), nonce=nonce)
    page.raw_headers.extend(h for h in holder.raw_headers if h[0] == b"set-cookie")
    return page


@router.post("/logout")
def logout(_: SessionDep) -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    sign_out(response)
    return response

