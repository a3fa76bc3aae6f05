"""Scheduled snapshots with APScheduler 3.x, rebuilt from discovery.

The catalog and the labels are the source of truth; the scheduler keeps only an
in-memory job per instance that has a valid schedule, and :meth:`sync` adds,
replaces or removes those jobs whenever discovery sees a change. A job does not
run a backup itself: it hands one to the :class:`~service.usecases.jobs.JobRunner`, whose
pool is the global concurrency limit and whose gate refuses a second run of
the same instance. After a downtime, an instance whose schedule passed while
the daemon was away runs once at start (coalesced), not once per missed slot.
Each fire claims its slot in the catalog first, so daemons sharing a catalog
run each scheduled time once between them (:mod:`service.usecases.scheduled`);
an hourly job forgets the old slots.
Each instance is scheduled on its own: a trigger that fails (a schedule an
older Holdfast stored unchecked) leaves that one instance unscheduled, with an
error logged, and never stops the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from service.bootstrap import Services
from service.usecases.instances import Instance
from service.usecases.jobs import JobRunner
from service.usecases.scheduled import (
    prune_slots,
    start_scheduled_backup,
    start_scheduled_verification,
)
from service.usecases.schedules import (
    overdue_instances,
    schedule_problem,
    scheduled_instances,
    trigger_for,
    verification_schedules,
)

VERIFY_PREFIX = "verify:"
"""APScheduler job id prefix of an instance's verified restores (its backups: the name)."""

PRUNE_JOB = "fleet:prune-slots"
"""APScheduler job id of the hourly slot pruning (a colon: never an instance's name)."""

PRUNE_INTERVAL_SECONDS = 3600

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
        """APScheduler job id (the instance, or VERIFY_PREFIX + it) -> its schedule."""
        self._failed: dict[str, str] = {}
        """Instance -> the schedule that could not be scheduled (logged once)."""
        self._instances: dict[str, Instance] = {}
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        self._scheduler.start()
        # Not among self._schedules: sync() manages instances' jobs only.
        self._scheduler.add_job(prune_slots, IntervalTrigger(seconds=PRUNE_INTERVAL_SECONDS,
                                                             timezone=UTC),
                                args=[self._services], id=PRUNE_JOB, replace_existing=True,
                                name="prune schedule slots")
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

    def health(self) -> str | None:
        """None while APScheduler runs its jobs, else why not (for ``/readyz``)."""
        thread = getattr(self._scheduler, "_thread", None)  # APScheduler's own loop
        if not self._started or not self._scheduler.running:
            return "the scheduler is not running"
        if thread is not None and not thread.is_alive():
            return "the scheduler's thread has stopped; restart holdfast serve"
        return None

    def sync(self, instances: Iterable[Instance], *, catch_up: bool = False) -> None:
        """Make the jobs match ``instances`` (all of them, not a delta). With
        ``catch_up``, instances whose schedule passed since their last run start now.
        One instance whose trigger fails is logged and left unscheduled; every
        other instance is still scheduled."""
        known = list(instances)
        wanted = scheduled_instances(known)
        wanted.update({VERIFY_PREFIX + name: schedule
                       for name, schedule in verification_schedules(known).items()})
        with self._lock:
            self._instances = {instance.name: instance for instance in known}
            for name in set(self._schedules) - set(wanted):
                self._scheduler.remove_job(name)
                logger.info("unscheduled %s", name, extra={"instance": name})
            scheduled: dict[str, str] = {}
            for name, schedule in wanted.items():
                if self._schedules.get(name) == schedule or self._schedule(name, schedule):
                    scheduled[name] = schedule
            self._schedules = scheduled
            self._failed = {name: schedule for name, schedule in self._failed.items()
                            if wanted.get(name) == schedule}
        if catch_up:
            backups = {name: schedule for name, schedule in scheduled.items()
                       if not name.startswith(VERIFY_PREFIX)}
            for name in overdue_instances(self._services, backups):
                logger.info("%s missed its schedule while Holdfast was down; running once",
                            name, extra={"instance": name})
                self._fire(name)

    def _schedule(self, name: str, schedule: str) -> bool:
        """Add or replace job ``name`` (an instance's backups, or its verified
        restores: :data:`VERIFY_PREFIX`); False (logged once per schedule) if its
        trigger cannot be built or cannot say when it next fires."""
        problem = schedule_problem(schedule)
        if problem is None:
            verifies = name.startswith(VERIFY_PREFIX)
            try:
                self._scheduler.add_job(
                    self._fire_verification if verifies else self._fire, trigger_for(schedule),
                    args=[name.removeprefix(VERIFY_PREFIX)], id=name, replace_existing=True,
                    name=f"verified restore {name[len(VERIFY_PREFIX):]}" if verifies
                    else f"backup {name}")
            except Exception as exc:  # this instance's trigger, not the scheduler's fault
                problem = f"holdfast.schedule {schedule!r} cannot be scheduled: {exc}"
        if problem is None:
            logger.info("scheduled %s: %s", name, schedule, extra={"instance": name})
            return True
        if self._scheduler.get_job(name) is not None:
            self._scheduler.remove_job(name)  # its old schedule is not what it asks for now
        if self._failed.get(name) != schedule:
            self._failed[name] = schedule
            logger.error("not scheduling %s: %s", name, problem, extra={"instance": name})
        return False

    def _fire_verification(self, name: str) -> None:
        with self._lock:
            instance = self._instances.get(name)
        if instance is not None:
            start_scheduled_verification(self._services, self._jobs, instance)

    def _fire(self, name: str) -> None:
        with self._lock:
            instance = self._instances.get(name)
        if instance is not None:
            start_scheduled_backup(self._services, self._jobs, instance)
