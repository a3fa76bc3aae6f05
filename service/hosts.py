"""Hosts of a fleet, the pure part: their names, records and whether they are alive.

Every daemon (``holdfast serve``) manages one Docker engine and registers it
in the catalog as a *host*, under ``HOLDFAST_HOST_NAME`` (default: the
engine's own name, as ``docker info`` reports it). It writes a heartbeat every
``HOLDFAST_HEARTBEAT_INTERVAL`` seconds; a host whose last heartbeat is older
than :data:`STALE_AFTER_BEATS` intervals is ``stale`` (its daemon stopped, or
lost the catalog). Daemons sharing one PostgreSQL catalog list each other's
hosts. Nothing here touches the catalog or Docker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from backup.errors import InvalidInput
from backup.names import shown
from backup.types import isoformat

HOST_NAME_MAX = 64
_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
STALE_AFTER_BEATS = 3
"""Heartbeats a host may miss before it is shown stale."""


def check_host_name(name: str, where: str = "HOLDFAST_HOST_NAME") -> str:
    """``name`` if it is a host name (1-64 of letters, digits, ``_.-``, starting
    with a letter or digit); else :class:`InvalidInput` saying so."""
    if not _HOST_NAME.fullmatch(name):
        raise InvalidInput(f"{where} {shown(name)}: give 1 to {HOST_NAME_MAX} letters, digits, "
                           "'_', '.' or '-', starting with a letter or digit")
    return name


def host_name_from_engine(engine_name: str) -> str:
    """A host name made of the engine's own name (``docker info``'s ``Name``,
    its machine's hostname): characters a host name cannot have become ``-``."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", engine_name).strip("-_.")[:HOST_NAME_MAX]
    return cleaned or "docker"


@dataclass(frozen=True)
class HostRecord:
    """One host as the catalog keeps it."""

    name: str
    engine_version: str
    instances: int
    """Instances its daemon discovered on the engine at its last heartbeat."""
    started_at: datetime
    """When its daemon started (registered)."""
    last_heartbeat: datetime
    holdfast_version: str
    runner: str
    """The daemon process (``host:pid:start``) that wrote the last heartbeat."""


def host_status(host: HostRecord, now: datetime, interval: float) -> str:
    """``alive``, or ``stale`` once :data:`STALE_AFTER_BEATS` heartbeats of
    ``interval`` seconds are missing."""
    late = now - host.last_heartbeat > timedelta(seconds=interval * STALE_AFTER_BEATS)
    return "stale" if late else "alive"


def host_json(host: HostRecord, now: datetime, interval: float) -> dict[str, Any]:
    return {"name": host.name, "status": host_status(host, now, interval),
            "engine_version": host.engine_version, "instances": host.instances,
            "started_at": isoformat(host.started_at),
            "last_heartbeat": isoformat(host.last_heartbeat),
            "seconds_since_heartbeat": max(0, round((now - host.last_heartbeat)
                                                    .total_seconds())),
            "holdfast_version": host.holdfast_version}


def name_clash(existing: HostRecord | None, runner: str, now: datetime, interval: float,
               other_may_run: bool) -> str | None:
    """Why a daemon (``runner``) may not take the host name ``existing`` holds,
    or None: another daemon's heartbeat under it is recent and that daemon may
    still run (a daemon restarted on the same machine takes its name back)."""
    if existing is None or existing.runner == runner or not other_may_run or \
            host_status(existing, now, interval) == "stale":
        return None
    age = max(0, round((now - existing.last_heartbeat).total_seconds()))
    return (f"host name {existing.name} is in use by another daemon ({existing.runner}, "
            f"heartbeat {age}s ago): give this one its own HOLDFAST_HOST_NAME")


def lease_seconds(interval: float) -> float:
    """How long a heartbeat vouches for its host's jobs: as long as the host
    stays ``alive`` (:data:`STALE_AFTER_BEATS` missed beats of ``interval``)."""
    return interval * STALE_AFTER_BEATS


def may_interrupt_others(steady_since: datetime | None, now: datetime,
                         interval: float) -> bool:
    """Whether a daemon that has beaten without a miss since ``steady_since``
    may take other hosts' expired leases for dead. Not until it has itself
    beaten for a whole lease: after a catalog outage every lease looks expired,
    and the first daemon back must not interrupt the jobs of hosts that are
    only as late as it was."""
    return steady_since is not None and \
        now - steady_since >= timedelta(seconds=lease_seconds(interval))
