"""Schedule arithmetic: ``holdfast.schedule`` values as APScheduler triggers, in UTC.

Pure functions over APScheduler 3's triggers (used here as a cron library, with
no scheduler running): the daemon's :class:`~service.entrypoints.daemon.scheduler.Scheduler`
builds its jobs from :func:`trigger_for`, start-up catch-up asks
:func:`is_overdue`, a fire claims the fleet-wide slot :func:`slot_of` names, and a
process without the daemon's scheduler (the CLI) estimates the next run with
:func:`estimate_next_run`. ``@every`` intervals count from :data:`INTERVAL_EPOCH`,
not from when a daemon started, so every daemon sharing a catalog fires, and
names its slots, at the same instants. Cron syntax is read once,
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

INTERVAL_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
"""Where every ``@every`` interval is counted from: fires fall on
``INTERVAL_EPOCH + k * interval``, the same on every daemon of a fleet."""

_SLOT_LOOKBACK = (timedelta(hours=1), timedelta(days=1), timedelta(days=32),
                  timedelta(days=400), timedelta(days=41 * 366))
"""How far back :func:`slot_of` looks for a cron's latest fire, widest last: an
hour holds one of a minutely cron, 41 years one of Feb 29 on a given weekday
(the rarest cron :func:`backup.labels.cron_values` accepts, across 2100)."""


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
        # Anchored, not counted from now: daemons started at different times
        # still fire together, so they compete for (and share) one slot per fire.
        return IntervalTrigger(seconds=_interval(schedule), start_date=INTERVAL_EPOCH,
                               timezone=UTC)
    minute, hour, day, month, weekday = cron_values(schedule)
    days = "*" if len(weekday) == 7 else ",".join(_CRON_WEEKDAYS[d] for d in sorted(weekday))
    return CronTrigger(minute=_listed(minute, 0, 59), hour=_listed(hour, 0, 23),
                       day=_listed(day, 1, 31), month=_listed(month, 1, 12),
                       day_of_week=days, timezone=UTC)


def _interval(schedule: str) -> int:
    """The seconds of an ``@every`` schedule. Raises ValueError."""
    return parse_duration(schedule[len("@every"):])


def slot_of(schedule: str, now: datetime) -> datetime | None:
    """The slot a fire of ``schedule`` happening at ``now`` belongs to: its
    latest fire time at or before ``now`` (UTC, whole seconds), so a fire that
    is late, or a catch-up after a downtime, names the run it stands for. None
    when the schedule has not fired in the 41 years before ``now``. The same on
    every daemon (``@every`` counts from :data:`INTERVAL_EPOCH`). Pure; raises
    ValueError for a schedule that does not validate."""
    moment = now.astimezone(UTC).replace(microsecond=0)
    if schedule.startswith("@every"):
        every = timedelta(seconds=_interval(schedule))
        return INTERVAL_EPOCH + (moment - INTERVAL_EPOCH) // every * every
    trigger = trigger_for(schedule)
    for lookback in _SLOT_LOOKBACK:  # the narrowest window that holds a fire: cheapest
        first: datetime | None = trigger.get_next_fire_time(None, moment - lookback)
        if first is not None and first <= moment:
            return _latest_fire(trigger, first, moment)
    return None


def _latest_fire(trigger: BaseTrigger, fire: datetime, moment: datetime) -> datetime:
    """The latest fire of ``trigger`` at or before ``moment``, given one
    (``fire``). Bisects instead of stepping from fire to fire: a minutely cron
    that runs one month a year has 44,640 fires to step through, 25 bisections."""
    latest, bound = fire, moment + timedelta(seconds=1)
    # latest: a fire <= moment; bound: no fire in [bound, moment]. Fires are whole
    # seconds, so once they are a second apart, latest is the last one.
    while (bound - latest) > timedelta(seconds=1):
        middle = latest + timedelta(seconds=int((bound - latest).total_seconds()) // 2)
        found: datetime | None = trigger.get_next_fire_time(None, middle)
        if found is not None and found <= moment:
            latest = found
        else:
            bound = middle
    return latest


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
    """Whether the schedule fired after ``last_run`` and by ``now`` (its
    :func:`slot_of` is later than the last run): the daemon was down over a
    scheduled time. Never true for an instance that never ran."""
    if last_run is None:
        return False
    slot = slot_of(schedule, now)
    return slot is not None and slot > last_run


def estimate_next_run(schedule: str | None, last_run: datetime | None,
                      now: datetime) -> datetime | None:
    """When the daemon will next run ``schedule``, for a process (the CLI) that
    cannot ask it: its trigger's next fire at or after ``now``. Both cron and
    ``@every`` (counted from :data:`INTERVAL_EPOCH`) follow the clock, so
    ``last_run`` no longer matters; it stays for the callers."""
    if not schedule:
        return None
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
