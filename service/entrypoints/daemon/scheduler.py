"""Scheduled snapshots with APScheduler 3.x, rebuilt from discovery.

The catalog and the labels are the source of truth; the scheduler keeps only an
in-memory job per instance that has a valid schedule, and :meth:`sync` adds,
replaces or removes those jobs whenever discovery sees a change. A job does not
run a backup itself: it hands one to the :class:`~service.usecases.jobs.JobRunner`, whose
pool is the global concurrency limit and whose gate refuses a second run of
the same instance. After a downtime, an instance whose schedule passed while
the daemon was away runs once at start (coalesced), not once per missed slot.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from service.bootstrap import Services
from service.usecases.instances import Instance
from service.usecases.jobs import JobRunner, start_scheduled_backup
from service.usecases.schedules import overdue_instances, scheduled_instances, trigger_for

logger = logging.getLogger(__name__)


class Scheduler:
    """APScheduler jobs kept in step with the instances discovery reports."""

    def __init__(self, services: Services, jobs: JobRunner) -> None:
        self._services = services
        self._jobs = jobs
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._schedules: dict[str, str] = {}
        self._instances: dict[str, Instance] = {}
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        self._scheduler.start()
        self._started = True

    def shutdown(self) -> None:
        if self._started:
            self._scheduler.shutdown(wait=False)
            self._started = False

    def next_run(self, instance: str) -> datetime | None:
        job = self._scheduler.get_job(instance)
        return job.next_run_time if job is not None else None

    def scheduled(self) -> dict[str, str]:
        with self._lock:
            return dict(self._schedules)

    def sync(self, instances: Iterable[Instance], *, catch_up: bool = False) -> None:
        """Make the jobs match ``instances`` (all of them, not a delta). With
        ``catch_up``, instances whose schedule passed since their last run start now."""
        known = list(instances)
        wanted = scheduled_instances(known)
        with self._lock:
            self._instances = {instance.name: instance for instance in known}
            for name in set(self._schedules) - set(wanted):
                self._scheduler.remove_job(name)
                logger.info("unscheduled %s", name, extra={"instance": name})
            for name, schedule in wanted.items():
                if self._schedules.get(name) == schedule:
                    continue
                self._scheduler.add_job(self._fire, trigger_for(schedule), args=[name], id=name,
                                        name=f"backup {name}", replace_existing=True)
                logger.info("scheduled %s: %s", name, schedule, extra={"instance": name})
            self._schedules = wanted
        if catch_up:
            for name in overdue_instances(self._services, wanted):
                logger.info("%s missed its schedule while Holdfast was down; running once",
                            name, extra={"instance": name})
                self._fire(name)

    def _fire(self, name: str) -> None:
        with self._lock:
            instance = self._instances.get(name)
        if instance is not None:
            start_scheduled_backup(self._services, self._jobs, instance)
