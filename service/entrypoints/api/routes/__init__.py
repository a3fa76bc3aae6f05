"""One router per resource; each route parses input, calls one use case and returns its JSON."""

from fastapi import APIRouter

from service.entrypoints.api.routes import (
    containers,
    copies,
    health,
    hosts,
    instances,
    jobs,
    maintenance,
    notifications,
    snapshots,
    targets,
    tokens,
    volumes,
    warm,
)

ROUTERS: tuple[APIRouter, ...] = (health.router, instances.router, snapshots.router,
                                  volumes.router, targets.router, jobs.router, copies.router,
                                  tokens.router, containers.router, maintenance.router,
                                  notifications.router, warm.router,
                                  hosts.router)

__all__ = ["ROUTERS"]
