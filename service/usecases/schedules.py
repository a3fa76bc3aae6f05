"""Schedule arithmetic: ``holdfast.schedule`` values as APScheduler triggers, in UTC.

Pure functions over APScheduler 3's triggers (used here as a cron library, with
no scheduler running): the daemon's :class:`~service.entrypoints.daemon.scheduler.Scheduler`
builds its jobs from :func:`trigger_for`, start-up catch-up asks
:func:`is_overdue`, and a process without the daemon's scheduler (the CLI)
estimates the next run with :func:`estimate_next_run`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from backup.labels import parse_duration
from backup.types import utcnow

if TYPE_CHECKING:
    from service.bootstrap import Services
    from service.usecases.instances import Instance

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


def scheduled_instances(instances: Iterable[Instance]) -> dict[str, str]:
    """Instance name -> schedule, for those the daemon runs on a schedule: a
    valid schedule, no label errors, and a running container."""
    return {instance.name: instance.policy.schedule for instance in instances
            if instance.policy.schedule and not instance.errors
            and instance.container is not None and instance.container.running}


def overdue_instances(svc: Services, schedules: Mapping[str, str],
                      now: datetime | None = None) -> list[str]:
    """Instances whose schedule passed since their newest snapshot (the daemon
    was down over a scheduled time): each runs once at start."""
    moment = now or utcnow()
    overdue = []
    for name, schedule in sorted(schedules.items()):
        latest = svc.catalog.latest_snapshot(name)
        if is_overdue(schedule, latest.created_at if latest else None, moment):
            overdue.append(name)
    return overdue
