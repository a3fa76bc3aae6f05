"""The watchdog's checks: instances whose backups went stale, targets that stopped answering.

The daemon calls :func:`check_freshness` every ``HOLDFAST_WATCH_INTERVAL``
seconds and :func:`check_targets_health` every
``HOLDFAST_TARGET_CHECK_INTERVAL``. Each only observes; the notifier decides
(:func:`backup.alerts.decide`), so a condition that stays bad fires once and
its first good observation fires ``recovered``. An instance is stale when no
complete snapshot arrived by :func:`backup.alerts.stale_deadline`, counted
from its newest complete snapshot or, without one, from when it was first
seen: a schedule that silently stopped firing is caught the same way as
backups that fail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from backup.alerts import Condition, Event, Observation, stale_deadline
from backup.labels import parse_duration
from backup.types import Snapshot, SnapshotStatus, isoformat
from service.bootstrap import Services
from service.usecases.instances import Instance
from service.usecases.notifications import RunAlerts
from service.usecases.schedules import trigger_for
from service.usecases.targets import check_target

logger = logging.getLogger(__name__)

FiresAfter = Callable[[datetime], datetime | None]


def fires_after(schedule: str) -> FiresAfter:
    """The schedule's first fire strictly after a given moment (None: never)."""
    if schedule.startswith("@every"):
        every = timedelta(seconds=parse_duration(schedule[len("@every"):]))
        return lambda moment: moment + every
    trigger = trigger_for(schedule)

    def after(moment: datetime) -> datetime | None:
        due: datetime | None = trigger.get_next_fire_time(None, moment + timedelta(seconds=1))
        return due

    return after


def freshness(instance: Instance, newest: Snapshot | None, first_seen: datetime | None,
              now: datetime) -> Observation | None:
    """Whether ``instance`` is stale now (pure), or None when it cannot be:
    disabled, or neither a schedule nor ``holdfast.stale_after`` says when a
    snapshot is due."""
    policy = instance.policy
    if not policy.enabled or (policy.schedule is None and policy.stale_after is None):
        return None
    reference = newest.finished_at if newest is not None and newest.finished_at else first_seen
    if reference is None:
        return None
    allowance = (newest.finished_at - newest.created_at
                 if newest is not None and newest.finished_at else timedelta())
    explicit = None if policy.stale_after is None else timedelta(seconds=policy.stale_after)
    try:
        deadline = stale_deadline(reference, fires_after(policy.schedule or "@every 1s"),
                                  allowance=allowance, explicit=explicit)
    except ValueError:  # a schedule that does not build is the label's error, shown elsewhere
        return None
    if deadline is None:
        return None
    since = (f"snapshot {newest.id} of {isoformat(reference)}" if newest is not None
             else f"it was first seen at {isoformat(reference)}")
    window = (f"holdfast.stale_after={policy.stale_after}s" if explicit is not None
              else f"two runs of {policy.schedule}")
    stale = now >= deadline
    reason = (f"no complete snapshot of {instance.name} since {since}; one was due by "
              f"{isoformat(deadline)} ({window})" if stale else
              f"{instance.name} has a complete snapshot within {window}")
    return Observation(Condition.FRESHNESS, instance.name, stale, reason, now,
                       instance=instance.name, snapshot=newest.id if newest else None)


def check_freshness(svc: Services, alerts: RunAlerts, instances: Iterable[Instance],
                    now: datetime) -> list[Event]:
    """Observe each instance's freshness; returns the events that fired. One
    instance the catalog cannot answer for is logged and skipped."""
    fired: list[Event] = []
    for instance in instances:
        try:
            complete = svc.catalog.list_snapshots(instance=instance.name,
                                                  status=SnapshotStatus.COMPLETE)
            record = svc.catalog.get_instance(instance.name)
            seen = freshness(instance, complete[0] if complete else None,
                             record.first_seen if record else None, now)
            if seen is not None:
                fired.extend(alerts.observe(seen))
        except Exception as exc:  # one instance's failure never stops the others' checks
            logger.error("cannot check whether %s is stale: %s", instance.name, exc,
                         extra={"instance": instance.name})
    return fired


def check_targets_health(svc: Services, alerts: RunAlerts, now: datetime) -> list[Event]:
    """Probe every configured target (:func:`check_target`); one that fails
    fires ``target.unreachable`` once, its first good probe ``recovered``."""
    fired: list[Event] = []
    for name in sorted(svc.settings.targets):
        check = check_target(svc, name)
        reason = (f"target {name} stores, returns and deletes a probe again" if check.ok
                  else f"target {name} failed its probe: {check.error}")
        try:
            fired.extend(alerts.observe(Observation(Condition.TARGET, name, not check.ok,
                                                    reason, now, target=name)))
        except Exception as exc:  # the catalog down: the next probe tries again
            logger.error("cannot report the probe of target %s: %s", name, exc,
                         extra={"target": name})
    return fired
