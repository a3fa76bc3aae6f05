"""The dashboard's read models: every instance's health at a glance, and one instance's history.

:func:`judge_health` is the pure decision (what one instance's facts mean:
``label error``, ``failing``, ``late``, ``missing``, ``new``, ``unverified``
or ``ok``, with the one line that says why); :func:`overview` gathers those
facts from discovery and the catalog in one pass over the snapshots and sorts
problems first; :func:`instance_history` is one instance's snapshots with the
figures its charts plot. Both only read. The web dashboard renders these; the
same facts are in ``GET /v1/instances`` and ``GET /v1/snapshots``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from backup.alerts import Alarm, Condition
from backup.errors import InstanceNotFound
from backup.types import Snapshot, SnapshotStatus, isoformat
from service.bootstrap import Services
from service.usecases.instances import (
    Instance,
    InstanceView,
    NextRun,
    list_instances,
    live_instances,
)
from service.usecases.watch import freshness

RUN_STRIP = 20
"""How many of an instance's latest runs the overview shows."""


class Health(StrEnum):
    """An instance's state on the overview, worst first (the sort order)."""

    LABEL_ERROR = "label error"
    HOST_DOWN = "host down"
    FAILING = "failing"
    LATE = "late"
    MISSING = "missing"
    NEW = "new"
    UNVERIFIED = "unverified"
    OK = "ok"

    @property
    def is_problem(self) -> bool:
        return self in _PROBLEMS

    @property
    def rank(self) -> int:
        return list(Health).index(self)


_PROBLEMS = frozenset({Health.LABEL_ERROR, Health.HOST_DOWN, Health.FAILING, Health.LATE,
                       Health.MISSING})


@dataclass(frozen=True)
class Facts:
    """What :func:`judge_health` looks at, already gathered."""

    errors: Sequence[str] = ()
    missing: bool = False
    last_run: Snapshot | None = None
    """The newest snapshot in any status."""
    alarms: Sequence[Alarm] = ()
    """The instance's open backup and verification alarms."""
    stale_reason: str | None = None
    """Why it is late (the watchdog's reason), if it is."""
    last_complete: Snapshot | None = None
    last_verified: Snapshot | None = None
    """The newest snapshot with a verified-restore verdict."""
    down_host: str | None = None
    """The host it lives on, when that host's daemon stopped beating."""


def judge_health(facts: Facts) -> tuple[Health, str]:
    """The instance's health and the one line that says why (pure)."""
    if facts.errors:
        return Health.LABEL_ERROR, facts.errors[0]
    if facts.down_host is not None:
        return Health.HOST_DOWN, (f"its host {facts.down_host} sends no heartbeat: nothing "
                                  "of it runs until that host's daemon is back")
    run = facts.last_run
    if run is not None and run.status == SnapshotStatus.FAILED:
        return Health.FAILING, f"the last run failed: {run.error or 'no reason recorded'}"
    if facts.alarms:
        return Health.FAILING, facts.alarms[0].reason
    if facts.stale_reason is not None:
        return Health.LATE, facts.stale_reason
    if facts.missing:
        return Health.MISSING, "its container is gone; its snapshots are kept"
    if facts.last_complete is None:
        return Health.NEW, "no complete snapshot yet"
    verified = facts.last_verified
    if verified is None or verified.verification is None:
        return Health.UNVERIFIED, "no snapshot has been restored and checked yet"
    if verified.verification.get("result") != "passed":
        return Health.FAILING, (f"the verified restore of {verified.id} failed: "
                                f"{verified.verification.get('reason') or 'no reason recorded'}")
    return Health.OK, f"snapshot {facts.last_complete.id} is complete"


@dataclass(frozen=True)
class Run:
    """One run on an instance's strip: a snapshot, as far as it got."""

    id: str
    status: str
    created_at: datetime
    seconds: float | None
    size_bytes: int | None

    @classmethod
    def of(cls, snapshot: Snapshot) -> Run:
        return cls(id=snapshot.id, status=str(snapshot.status), created_at=snapshot.created_at,
                   seconds=duration(snapshot), size_bytes=snapshot.size_bytes)


def duration(snapshot: Snapshot) -> float | None:
    """How long the snapshot took, in seconds (None while it runs)."""
    if snapshot.finished_at is None:
        return None
    return round((snapshot.finished_at - snapshot.created_at).total_seconds(), 3)


@dataclass(frozen=True)
class InstanceHealth:
    """One overview row."""

    view: InstanceView
    health: Health
    reason: str
    last_complete_at: datetime | None
    last_verified_at: datetime | None
    runs: tuple[Run, ...]
    """The last :data:`RUN_STRIP` runs, oldest first."""

    @property
    def name(self) -> str:
        return self.view.name

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "engine": self.view.engine, "health": str(self.health),
                "reason": self.reason, "target": self.view.target,
                "last_complete_at": isoformat(self.last_complete_at),
                "last_verified_at": isoformat(self.last_verified_at),
                "next_run": isoformat(self.view.next_run),
                "runs": [{"id": r.id, "status": r.status} for r in self.runs]}


@dataclass(frozen=True)
class Overview:
    """Every instance, problems first, and the totals above them."""

    instances: list[InstanceHealth]
    stored_by_target: dict[str, int] = field(default_factory=dict)
    """Bytes held by complete snapshots, per target."""

    @property
    def protected(self) -> int:
        """Instances with a complete snapshot and no problem."""
        return sum(1 for row in self.instances
                   if not row.health.is_problem and row.last_complete_at is not None)

    @property
    def failing(self) -> int:
        return sum(1 for row in self.instances if row.health == Health.FAILING)


def overview(svc: Services, now: datetime, next_run: NextRun | None = None,
             known: list[Instance] | None = None) -> Overview:
    """Every instance's health, worst first then by name. ``known`` is
    discovery's live view if the caller has one (else Docker is asked once)."""
    snapshots = svc.catalog.list_snapshots()
    rows = _rows(svc, now, next_run, known, snapshots)
    rows.sort(key=lambda row: (row.health.rank, row.name))
    return Overview(instances=rows, stored_by_target=stored_by_target(snapshots))


def _rows(svc: Services, now: datetime, next_run: NextRun | None,
          known: list[Instance] | None, snapshots: Iterable[Snapshot],
          only: str | None = None) -> list[InstanceHealth]:
    live = live_instances(svc) if known is None else known
    by_instance: dict[str, list[Snapshot]] = defaultdict(list)
    for snapshot in snapshots:
        by_instance[snapshot.instance].append(snapshot)
    alarms = _alarms_by_instance(svc.catalog.list_alarms())
    live_by_name = {instance.name: instance for instance in live}
    return [_row(svc, view, live_by_name.get(view.name), by_instance.get(view.name, []),
                 alarms.get(view.name, []), now)
            for view in list_instances(svc, next_run, live) if only in (None, view.name)]


def stored_by_target(snapshots: Iterable[Snapshot]) -> dict[str, int]:
    """Bytes held by the complete snapshots, per target (pure)."""
    stored: dict[str, int] = defaultdict(int)
    for snapshot in snapshots:
        if snapshot.status == SnapshotStatus.COMPLETE:
            stored[snapshot.target] += snapshot.size_bytes or 0
    return dict(sorted(stored.items()))


def _alarms_by_instance(alarms: Iterable[Alarm]) -> Mapping[str, list[Alarm]]:
    found: dict[str, list[Alarm]] = defaultdict(list)
    for alarm in alarms:
        if alarm.condition in (Condition.BACKUP, Condition.VERIFICATION):
            found[alarm.subject].append(alarm)
    return found


def _row(svc: Services, view: InstanceView, instance: Instance | None,
         snapshots: list[Snapshot], alarms: list[Alarm], now: datetime) -> InstanceHealth:
    complete = next((s for s in snapshots if s.status == SnapshotStatus.COMPLETE), None)
    verified = next((s for s in snapshots if s.verified_at is not None), None)
    facts = Facts(errors=view.errors, missing=view.container is None,
                  last_run=snapshots[0] if snapshots else None, alarms=alarms,
                  stale_reason=_stale_reason(svc, instance, complete, now),
                  last_complete=complete, last_verified=verified,
                  down_host=view.host if view.host_status == "stale" else None)
    health, reason = judge_health(facts)
    return InstanceHealth(view=view, health=health, reason=reason,
                          last_complete_at=complete.finished_at if complete else None,
                          last_verified_at=verified.verified_at if verified else None,
                          runs=tuple(Run.of(s) for s in reversed(snapshots[:RUN_STRIP])))


def _stale_reason(svc: Services, instance: Instance | None, complete: Snapshot | None,
                  now: datetime) -> str | None:
    if instance is None or instance.errors:
        return None
    record = svc.catalog.get_instance(instance.name)
    observed = freshness(instance, complete, record.first_seen if record else None, now)
    return observed.reason if observed is not None and observed.failing else None


@dataclass(frozen=True)
class InstanceHistory:
    """One instance's page: its overview row and every snapshot, newest first."""

    row: InstanceHealth
    snapshots: list[Snapshot]

    def chart_series(self) -> dict[str, list[float | None]]:
        """Size, raw size and duration of the finished snapshots over time,
        oldest first, as the charts plot them (time in Unix seconds)."""
        done = [s for s in reversed(self.snapshots) if s.finished_at is not None]
        return {"time": [s.created_at.timestamp() for s in done],
                "size": [s.size_bytes for s in done],
                "raw": [s.raw_bytes for s in done],
                "seconds": [duration(s) for s in done]}


def instance_history(svc: Services, name: str, now: datetime, next_run: NextRun | None = None,
                     known: list[Instance] | None = None) -> InstanceHistory:
    """``name``'s overview row and snapshots; :class:`~backup.errors.InstanceNotFound`
    when neither discovery nor the catalog knows it."""
    snapshots = svc.catalog.list_snapshots(instance=name)
    rows = _rows(svc, now, next_run, known, snapshots, only=name)
    if not rows:
        raise InstanceNotFound(f"no instance named {name!r}: label its container "
                               "holdfast.enable=true; the overview lists them")
    return InstanceHistory(row=rows[0], snapshots=snapshots)


@dataclass(frozen=True)
class TargetUsage:
    """What one configured target holds, by the catalog."""

    name: str
    snapshots: int
    bytes: int


def target_usage(svc: Services) -> list[TargetUsage]:
    """Every configured target with its complete snapshots' count and bytes."""
    counts: dict[str, int] = defaultdict(int)
    complete = svc.catalog.list_snapshots(status=SnapshotStatus.COMPLETE)
    for snapshot in complete:
        counts[snapshot.target] += 1
    stored = stored_by_target(complete)
    names = sorted(set(svc.settings.targets) | set(counts))
    return [TargetUsage(name, counts.get(name, 0), stored.get(name, 0)) for name in names]


COPY_NAME_TRIES = 100


@dataclass(frozen=True)
class RestoreDefaults:
    """What the restore dialog starts with: a free name for a copy, and the
    container a swap-in would replace (the instance's, if it has one)."""

    name: str
    replace: str | None


def restore_defaults(svc: Services, snapshot: Snapshot) -> RestoreDefaults:
    record = svc.catalog.get_instance(snapshot.instance)
    return RestoreDefaults(name=suggested_copy_name(svc, snapshot),
                           replace=record.container_name if record else None)


def suggested_copy_name(svc: Services, snapshot: Snapshot) -> str:
    """A container name for a copy of ``snapshot`` that no container has yet:
    ``<instance>-copy-<the snapshot's time>`` (``-2``, ``-3`` … if taken)."""
    base = f"{snapshot.instance}-copy-{snapshot.created_at:%Y%m%d-%H%M}"
    taken = svc.docker.container_names()
    for attempt in range(1, COPY_NAME_TRIES + 1):
        name = base if attempt == 1 else f"{base}-{attempt}"
        if name not in taken:
            return name
    return f"{base}-{snapshot.id[-6:]}"
