"""Use cases for the fleet's hosts: register this daemon's engine, beat, list them.

:func:`register_host` runs once as the daemon starts and refuses a host name
another live daemon holds (:func:`service.hosts.name_clash`); :func:`heartbeat`
then runs every ``HOLDFAST_HEARTBEAT_INTERVAL`` seconds; :func:`list_hosts`
answers ``holdfast hosts`` and ``GET /v1/hosts``; :func:`find_host` and
:func:`host_statuses` are how other use cases look a host up.
"""

from __future__ import annotations

import logging
import socket
from datetime import datetime
from typing import Any

from backup.errors import Conflict, DockerUnavailable
from backup.types import utcnow
from service.bootstrap import Services
from service.hosts import HostRecord, host_json, host_status, name_clash
from service.runs import current_runner, may_be_running
from service.version import holdfast_version

logger = logging.getLogger(__name__)


def _identity(svc: Services) -> tuple[str, str]:
    """The engine's name and version; while Docker is unreachable, this
    machine's hostname and ``unknown`` (the daemon starts without its engine)."""
    try:
        return svc.docker.engine_identity()
    except DockerUnavailable:
        return socket.gethostname(), "unknown"


def resolve_host_name(svc: Services) -> str:
    """``HOLDFAST_HOST_NAME``, else the engine's own name: what this daemon
    registers as, once at start (a name never changes while it runs)."""
    return svc.host_name()


def _record(svc: Services, name: str, started_at: datetime, instances: int,
            now: datetime) -> HostRecord:
    return HostRecord(name=name, engine_version=_identity(svc)[1][:64], instances=instances,
                      started_at=started_at, last_heartbeat=now,
                      holdfast_version=holdfast_version()[:64], runner=current_runner())


def find_host(svc: Services, name: str) -> HostRecord | None:
    """Host ``name``'s row, or None if it never registered."""
    return next((h for h in svc.catalog.list_hosts() if h.name == name), None)


def host_statuses(svc: Services, now: datetime | None = None) -> dict[str, str]:
    """Each host's ``alive`` or ``stale`` (:func:`service.hosts.host_status`)."""
    now = now or utcnow()
    return {h.name: host_status(h, now, svc.settings.heartbeat_interval)
            for h in svc.catalog.list_hosts()}


def _clash(svc: Services, record: HostRecord, now: datetime) -> str | None:
    existing = find_host(svc, record.name)
    return name_clash(existing, record.runner, now, svc.settings.heartbeat_interval,
                      other_may_run=existing is not None and may_be_running(existing.runner))


def register_host(svc: Services, started_at: datetime, name: str | None = None,
                  now: datetime | None = None) -> HostRecord:
    """Record this daemon's host (``name``, else :func:`resolve_host_name`);
    :class:`Conflict` if another live daemon beats under the same name."""
    now = now or utcnow()
    record = _record(svc, name or resolve_host_name(svc), started_at, 0, now)
    problem = _clash(svc, record, now)
    if problem is not None:
        raise Conflict(problem)
    svc.catalog.save_host(record)
    logger.info("registered as host %s (Docker %s)", record.name, record.engine_version)
    return record


def heartbeat(svc: Services, name: str, started_at: datetime, instances: int,
              now: datetime | None = None) -> HostRecord | None:
    """Renew host ``name``'s row with the instance count; a name another daemon
    took meanwhile is logged and left to it (None)."""
    now = now or utcnow()
    record = _record(svc, name, started_at, instances, now)
    problem = _clash(svc, record, now)
    if problem is not None:
        logger.error("no heartbeat written: %s", problem)
        return None
    svc.catalog.save_host(record)
    return record


def list_hosts(svc: Services, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every host, by name, with ``status`` ``alive`` or ``stale``."""
    now = now or utcnow()
    return [host_json(h, now, svc.settings.heartbeat_interval) for h in svc.catalog.list_hosts()]
