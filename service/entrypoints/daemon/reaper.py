"""The daemon's reaper: removes copies whose TTL has passed, every ~30 seconds.

An APScheduler interval job (``HOLDFAST_COPY_REAP_INTERVAL`` seconds, first
run at start-up) calls :func:`service.usecases.copies.reap_expired_copies`,
which holds all the logic; a sweep that fails as a whole (the catalog
unreachable) is logged and the next one tries again.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from backup.errors import HoldfastError
from service.bootstrap import Services
from service.usecases.copies import reap_expired_copies

logger = logging.getLogger(__name__)


class CopyReaper:
    """Sweeps for expired copies on its own scheduler thread."""

    def __init__(self, services: Services, interval: float) -> None:
        self._services = services
        self._interval = interval
        self._scheduler = BackgroundScheduler(
            timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})

    def start(self) -> None:
        self._scheduler.add_job(self.sweep, "interval", seconds=self._interval, id="reaper",
                                name="remove expired copies", next_run_time=datetime.now(UTC))
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def sweep(self) -> None:
        try:
            reaped = reap_expired_copies(self._services)
        except HoldfastError as exc:
            logger.warning("could not look for expired copies: %s", exc)
            return
        if reaped:
            logger.info("expired copies: %d handled, %d removed", len(reaped),
                        sum(1 for item in reaped if item.done and item.error is None))
