"""Scheduled snapshots with APScheduler 3.x, rebuilt from discovery.

The catalog and the labels are the source of truth; the scheduler keeps only an
in-memory job per instance that has a valid schedule, and :meth:`sync` adds,
replaces or removes those jobs whenever discovery sees a change. A job does not
run a backup itself: it hands one to the :class:`~service.jobs.JobRunner`, whose
pool is the global concurrency limit and whose gate refuses a second run of
the same instance. After a downtime, an instance whose schedule passed while
the daemon was away runs once at start (coalesced), not once per missed slot.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from backup.errors import HoldfastError
from backup.labels import parse_duration
from backup.types import utcnow
from service import usecases
from service.bootstrap import Services
from service.jobs import JobRunner
from service.runs import AlreadyRunning

logger = logging.getLogger(__name__)

_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


_CRON_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def weekdays_as_names(field: str) -> str:
    """A cron weekday field (0 or 7 = Sunday) spelled with day names.

    APScheduler 3 numbers weekdays from Monday = 0, and ``from_crontab`` passes
    the numbers through, so ``0 0 * * 0`` would fire on Mondays. Names mean the
    same to both, so every number, range and step is expanded into names.
    """
    if field == "*":
        return field
    days: list[str] = []
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            first, last = 0, 6
        else:
            bounds = [_weekday_number(bound) for bound in base.split("-")]
            first, last = bounds[0], bounds[-1]
            if not step_text and len(bounds) == 1:
                last = first
        for number in range(first, last + 1, step):
            name = _CRON_WEEKDAYS[number]
            if name not in days:
                days.append(name)
    return ",".join(days)


def _weekday_number(text: str) -> int:
    lowered = text.lower()
    return _CRON_WEEKDAYS.index(lowered) if lowered in _CRON_WEEKDAYS else int(text)


def trigger_for(schedule: str) -> BaseTrigger:
    """An APScheduler trigger for a validated ``holdfast.schedule`` value (UTC)."""
    if schedule.startswith("@every"):
        return IntervalTrigger(seconds=parse_duration(schedule[len("@every"):]), timezone=UTC)
    minute, hour, day, month, weekday = _ALIASES.get(schedule, schedule).split()
    return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                       day_of_week=weekdays_as_names(weekday), timezone=UTC)


def is_overdue(schedule: str, last_run: datetime | None, now: datetime) -> bool:
    """Whether a run was due between ``last_run`` and ``now``: the daemon was
    down over a scheduled time. Never true for an instance that never ran."""
    if last_run is None:
        return False
    if schedule.startswith("@every"):
        return last_run + timedelta(seconds=parse_duration(schedule[len("@every"):])) <= now
    due = trigger_for(schedule).get_next_fire_time(None, last_run + timedelta(seconds=1))
    return due is not None and due <= now


def estimate_next_run(schedule: str | None, last_run: datetime | None,
                      now: datetime) -> datetime | None:
    """When the daemon will next run ``schedule``, for a process (the CLI) that
    cannot ask it: cron times follow the clock; ``@every`` counts from the
    last run, or is unknown (None) before the first one."""
    if not schedule:
        return None
    if schedule.startswith("@every"):
        if last_run is None:
            return None
        return max(now, last_run + timedelta(seconds=parse_duration(schedule[len("@every"):])))
    due: datetime | None = trigger_for(schedule).get_next_fire_time(None, now)
    return due


class Scheduler:
    def __init__(self, services: Services, jobs: JobRunner) -> None:
        self._services = services
        self._jobs = jobs
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._schedules: dict[str, str] = {}
        self._instances: dict[str, usecases.Instance] = {}
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

    def sync(self, instances: Iterable[usecases.Instance], *, catch_up: bool = False) -> None:
        """Make the jobs match ``instances`` (all of them, not a delta). With
        ``catch_up``, instances whose schedule passed since their last run start now."""
        wanted: dict[str, str] = {}
        with self._lock:
            self._instances = {}
            for instance in instances:
                self._instances[instance.name] = instance
                if instance.policy.schedule and not instance.errors and _running(instance):
                    wanted[instance.name] = instance.policy.schedule
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
            now = utcnow()
            for name, schedule in wanted.items():
                latest = self._services.catalog.latest_snapshot(name)
                if is_overdue(schedule, latest.created_at if latest else None, now):
                    logger.info("%s missed its schedule while Holdfast was down; running once",
                                name, extra={"instance": name})
                    self._fire(name)

    def _fire(self, name: str) -> None:
        with self._lock:
            instance = self._instances.get(name)
        if instance is None:
            return
        try:
            request = usecases.prepare_backup_for(self._services, instance)
            job = self._jobs.submit_backup(request, trigger="schedule")
            logger.info("scheduled backup of %s queued as %s", name, job.id,
                        extra={"instance": name, "job": job.id})
        except AlreadyRunning as exc:
            logger.info("scheduled backup of %s skipped: %s", name, exc,
                        extra={"instance": name})
        except HoldfastError as exc:
            logger.error("scheduled backup of %s cannot start: %s", name, exc,
                         extra={"instance": name})


def _running(instance: usecases.Instance) -> bool:
    return instance.container is not None and instance.container.running
