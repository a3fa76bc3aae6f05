"""The daemon's watchdog: stale instances and unreachable targets, checked on a timer.

Two APScheduler interval jobs on a thread of their own (as the copy reaper's):
freshness every ``HOLDFAST_WATCH_INTERVAL`` seconds over the instances
discovery knows, and a probe of every target every
``HOLDFAST_TARGET_CHECK_INTERVAL`` seconds (0 turns probes off). The checks
and their decisions are :mod:`service.usecases.watch`'s; a sweep that fails as
a whole is logged and the next one tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from backup.types import utcnow
from service.bootstrap import Services
from service.usecases.instances import Instance
from service.usecases.notifications import RunAlerts
from service.usecases.watch import check_freshness, check_targets_health

logger = logging.getLogger(__name__)


class Watchdog:
    def __init__(self, services: Services, alerts: RunAlerts,
                 instances: Callable[[], list[Instance] | None]) -> None:
        """``instances`` is discovery's live view (None while it is disconnected:
        nothing is judged stale on a view that may be out of date)."""
        self._services, self._alerts, self._instances = services, alerts, instances
        self._scheduler = BackgroundScheduler(
            timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})

    def start(self) -> None:
        settings = self._services.settings
        first = datetime.now(UTC) + timedelta(seconds=min(5.0, settings.watch_interval))
        self._scheduler.add_job(self.check_freshness, "interval",
                                seconds=settings.watch_interval, id="freshness",
                                name="look for stale instances", next_run_time=first)
        if settings.target_check_interval > 0:
            self._scheduler.add_job(self.check_targets, "interval",
                                    seconds=settings.target_check_interval, id="targets",
                                    name="probe the storage targets", next_run_time=first)
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def check_freshness(self) -> None:
        instances = self._instances()
        if instances is None:
            return
        try:
            check_freshness(self._services, self._alerts, instances, utcnow())
        except Exception as exc:  # the timer must survive anything one sweep meets
            logger.error("stale-instance check failed: %s", exc)

    def check_targets(self) -> None:
        try:
            check_targets_health(self._services, self._alerts, utcnow())
        except Exception as exc:  # as above
            logger.error("target probe failed: %s", exc)
