"""Use case for readiness: are the catalog and the Docker engine reachable?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backup.errors import HoldfastError
from service.bootstrap import Services


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str]
    """Each dependency's ``ok`` or the one-line reason it is not."""

    @property
    def ready(self) -> bool:
        return all(value == "ok" for value in self.checks.values())

    def to_json(self) -> dict[str, Any]:
        return {"ready": self.ready, "checks": self.checks}


def readiness(svc: Services) -> Readiness:
    checks: dict[str, str] = {}
    for name, probe in (("catalog", svc.catalog.ping), ("docker", svc.docker.ping)):
        try:
            probe()
            checks[name] = "ok"
        except HoldfastError as exc:
            checks[name] = str(exc)
    return Readiness(checks)
