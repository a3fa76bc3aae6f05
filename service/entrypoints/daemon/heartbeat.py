"""The daemon's heartbeat: this host's row in the catalog, renewed every ~15 seconds.

Registration happens once, before the daemon serves (a host name another
live daemon holds stops it there); then an APScheduler interval job
(``HOLDFAST_HEARTBEAT_INTERVAL``) calls :func:`service.usecases.hosts.heartbeat`
with the number of instances discovery sees. A beat that fails (the catalog
or Docker unreachable) is logged and the next one tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from backup.errors import HoldfastError
from service.bootstrap import Services
from service.usecases.hosts import heartbeat, register_host

logger = logging.getLogger(__name__)


class Heartbeat:
    """Registers the host, then beats on its own scheduler thread."""

    def __init__(self, services: Services, instances: Callable[[], int]) -> None:
        self._services = services
        self._instances = instances
        self._started_at = datetime.now(UTC)
        self._name = ""
        self._scheduler = BackgroundScheduler(
            timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})

    def start(self) -> None:
        """Register (raising :class:`~backup.errors.Conflict` on a clash), then
        beat; the first beats count no instances until discovery has listed them."""
        self._name = register_host(self._services, self._started_at).name
        self._scheduler.add_job(self.beat, "interval",
                                seconds=self._services.settings.heartbeat_interval,
                                id="heartbeat", name="host heartbeat")
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def beat(self) -> None:
        try:
            heartbeat(self._services, self._name, self._started_at, self._instances())
        except HoldfastError as exc:
            logger.warning("could not write this host's heartbeat: %s", exc)
