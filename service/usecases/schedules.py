"""Schedule arithmetic: ``holdfast.schedule`` values as APScheduler triggers, in UTC.

Pure functions over APScheduler 3's triggers (used here as a cron library, with
no scheduler running): the daemon's :class:`~service.entrypoints.daemon.scheduler.Scheduler`
builds its jobs from :func:`trigger_for`, start-up catch-up asks
:func:`is_overdue`, and a process without the daemon's scheduler (the CLI)
estimates the next run with :func:`estimate_next_run`. Cron syntax is read once,
by :func:`backup.labels.cron_values`, and handed to APScheduler as explicit
lists; :func:`schedule_problem` turns a trigger that fails into that one
instance's error instead of an exception that would stop every other one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from backup.labels import AFTER_BACKUP, cron_values, parse_duration
from backup.types import utcnow

if TYPE_CHECKING:
    from service.bootstrap import Services
    from service.usecases.instances import Instance

logger = logging.getLogger(__name__)

_CRON_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def weekdays_as_names(field: str) -> str:
    """A cron weekday field (0 or 7 = Sunday) spelled with day names, Sunday first.

    APScheduler 3 numbers weekdays from Monday = 0, and ``from_crontab`` passes
    the numbers through, so ``0 0 * * 0`` would fire on Mondays. Names mean the
    same to both, so every number, range and step is expanded into names.
    """
    if field == "*":
        return field
    days = cron_values(f"* * * * {field}")[4]
    return ",".join(_CRON_WEEKDAYS[day] for day in sorted(days))


def _listed(values: frozenset[int], low: int, high: int) -> str:
    """A field as the explicit list :func:`backup.labels.cron_values` expanded,
    so APScheduler never re-reads cron syntax (its steps, names and ranges
    differ in details); ``*`` when every value is in."""
    if len(values) == high - low + 1:
        return "*"
    return ",".join(str(value) for value in sorted(values))


def trigger_for(schedule: str) -> BaseTrigger:
    """An APScheduler trigger for a validated ``holdfast.schedule`` value (UTC).
    Raises ValueError for one that does not validate."""
    if schedule.startswith("@every"):
        return IntervalTrigger(seconds=parse_duration(schedule[len("@every"):]), timezone=UTC)
    minute, hour, day, month, weekday = cron_values(schedule)
    days = "*" if len(weekday) == 7 else ",".join(_CRON_WEEKDAYS[d] for d in sorted(weekday))
    return CronTrigger(minute=_listed(minute, 0, 59), hour=_listed(hour, 0, 23),
                       day=_listed(day, 1, 31), month=_listed(month, 1, 12),
                       day_of_week=days, timezone=UTC)


def schedule_problem(schedule: str, now: datetime | None = None) -> str | None:
    """Why ``schedule`` cannot be run (one line), or None when its trigger builds
    and names a next run. Never raises: this is what keeps one instance's bad
    schedule (say one an older Holdfast stored) from stopping the others."""
    try:
        due = trigger_for(schedule).get_next_fire_time(None, now or utcnow())
    except Exception as exc:  # any failure here belongs to this one schedule
        return f"holdfast.schedule {schedule!r} cannot be scheduled: {exc}"
    if due is None:
        return f"holdfast.schedule {schedule!r} never fires"
    return None


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


def verification_schedules(instances: Iterable[Instance]) -> dict[str, str]:
    """Instance name -> ``holdfast.verify`` schedule, for those whose verified
    restores run on a schedule (``after-backup`` ones follow their backups),
    with no label errors. A stopped container does not matter: a verification
    restores the snapshot, never touches the instance."""
    return {instance.name: instance.policy.verify for instance in instances
            if instance.policy.verify and instance.policy.verify != AFTER_BACKUP
            and not instance.errors}


def overdue_instances(svc: Services, schedules: Mapping[str, str],
                      now: datetime | None = None) -> list[str]:
    """Instances whose schedule passed since their newest snapshot (the daemon
    was down over a scheduled time): each runs once at start."""
    moment = now or utcnow()
    overdue = []
    for name, schedule in sorted(schedules.items()):
        latest = svc.catalog.latest_snapshot(name)
        try:
            due = is_overdue(schedule, latest.created_at if latest else None, moment)
        except (ArithmeticError, ValueError) as exc:  # this schedule's, not the others'
            logger.error("cannot tell whether %s missed its schedule %r: %s", name, schedule,
                         exc, extra={"instance": name})
            continue
        if due:
            overdue.append(name)
    return overdue
