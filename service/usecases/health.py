"""Use case for readiness: are the catalog and the Docker engine reachable, and
are the daemon's discovery and scheduler working?

The daemon's parts report through :class:`~service.status.DaemonStatus` in
the services (``svc.status``): discovery is not ready until its first listing
and stops being ready when its loop dies or keeps failing for longer than its
back-off; the scheduler, when it is not running. A process without them (the
CLI) checks only the catalog and Docker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backup.errors import HoldfastError
from service.bootstrap import Services
from service.status import DaemonStatus


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str]
    """Each dependency's or part's ``ok``, or the one-line reason it is not."""

    @property
    def ready(self) -> bool:
        return all(value == "ok" for value in self.checks.values())

    def to_json(self) -> dict[str, Any]:
        return {"ready": self.ready, "checks": self.checks}


def readiness(svc: Services, status: DaemonStatus | None = None) -> Readiness:
    """Ping the catalog and Docker, and ask every part in ``status`` (by
    default ``svc.status``, where the daemon registers discovery and the scheduler)."""
    checks: dict[str, str] = {}
    for name, probe in (("catalog", svc.catalog.ping), ("docker", svc.docker.ping)):
        try:
            probe()
            checks[name] = "ok"
        except HoldfastError as exc:
            checks[name] = str(exc)
    checks.update((status or svc.status).checks())
    return Readiness(checks)
