"""The daemon's heartbeat: this host's row in the catalog, renewed every ~15 seconds.

Registration happens once, before the daemon serves (a host name another
live daemon holds stops it there); then an APScheduler interval job
(``HOLDFAST_HEARTBEAT_INTERVAL``) calls :func:`service.usecases.hosts.heartbeat`
with the number of instances discovery sees. A beat that fails (the catalog
or Docker unreachable) is logged and the next one tries again. Each beat also
renews the leases of this host's jobs and, once this daemon has beaten without
a miss for a whole lease, marks other hosts' jobs whose leases ran out
``interrupted`` (:mod:`service.usecases.fleet`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from backup.errors import HoldfastError
from service.bootstrap import Services
from service.hosts import may_interrupt_others
from service.usecases.fleet import interrupt_lost_jobs, keep_leases
from service.usecases.hosts import heartbeat, register_host

logger = logging.getLogger(__name__)


class Heartbeat:
    """Registers the host, then beats on its own scheduler thread."""

    def __init__(self, services: Services, instances: Callable[[], int]) -> None:
        self._services = services
        self._instances = instances
        self._started_at = datetime.now(UTC)
        self._name = ""
        self._steady_since: datetime | None = None
        """Since when every beat has been written (None after a miss)."""
        self._scheduler = BackgroundScheduler(
            timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})

    def start(self) -> None:
        """Register (raising :class:`~backup.errors.Conflict` on a clash), then
        beat; the first beats count no instances until discovery has listed them."""
        self._name = register_host(self._services, self._started_at).name
        self._steady_since = datetime.now(UTC)
        self._scheduler.add_job(self.beat, "interval",
                                seconds=self._services.settings.heartbeat_interval,
                                id="heartbeat", name="host heartbeat")
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def beat(self) -> None:
        now = datetime.now(UTC)
        try:
            written = heartbeat(self._services, self._name, self._started_at,
                                self._instances(), now=now)
            keep_leases(self._services, now)
            if written is None:
                self._steady_since = None
                return
            self._steady_since = self._steady_since or now
            if may_interrupt_others(self._steady_since, now,
                                    self._services.settings.heartbeat_interval):
                interrupt_lost_jobs(self._services, now)
        except HoldfastError as exc:
            self._steady_since = None
            logger.warning("could not write this host's heartbeat: %s", exc)
