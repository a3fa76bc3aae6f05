"""Use cases for instances: what is discovered, how it is described, its policy.

An instance is a labelled container seen through its policy (labels, with any
API-set override from the catalog laid over them) and its detected engine.
Reading instances never writes: :func:`live_instances` only looks, and
:func:`refresh_instances` (called by discovery, retention and backups, which
change things anyway) also records what it saw in the catalog.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from backup.encryption import encrypt_label_problem
from backup.engines import engine_names
from backup.engines.detect import BINARY_HINTS, detect_engine
from backup.errors import (
    Conflict,
    HoldfastError,
    InstanceNotFound,
    InvalidLabels,
    NotFound,
)
from backup.labels import PREFIX, UNSTORED_LABELS, InstancePolicy, parse_bool, parse_labels
from backup.types import (
    DatabaseContainer,
    Snapshot,
    SnapshotStatus,
    isoformat,
    utcnow,
)
from restore.swap import is_set_aside
from service.bootstrap import Services, unknown_target
from service.ports import in_scope
from service.records import InstanceRecord, JobStatus
from service.runs import may_be_running
from service.usecases.hosts import host_statuses
from service.usecases.schedules import estimate_next_run, schedule_problem

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Instance:
    """A discovered instance: its container (if any), policy and engine."""

    policy: InstancePolicy
    container: DatabaseContainer | None
    engine: str | None
    errors: tuple[str, ...]
    clash: str | None = None
    """Why its name is another host's (:func:`name_clash`): then it is not
    recorded, scheduled or backed up here, and ``errors`` says so."""

    @property
    def name(self) -> str:
        return self.policy.name


@dataclass(frozen=True)
class InstanceView:
    name: str
    container: str | None
    container_id: str | None
    status: str
    engine: str | None
    image: str | None
    enabled: bool
    schedule: str | None
    retention: dict[str, int]
    target: str
    databases: list[str]
    errors: list[str]
    last_snapshot: dict[str, Any] | None = field(default=None)
    verify: str | None = None
    """``holdfast.verify``: when verified restores of it run (None: never)."""
    next_run: datetime | None = None
    policy_source: str = "labels"
    notify: list[str] | None = None
    """``holdfast.notify``: the channels its events go to (None: every channel)."""
    stale_after: int | None = None
    """``holdfast.stale_after`` in seconds (None: twice its schedule's interval)."""
    ping: bool = False
    """Whether ``holdfast.ping`` is set (the URL itself is a secret, never shown)."""
    host: str | None = None
    """The host whose engine runs it (for a missing one, where it was last seen)."""
    host_status: str | None = None
    """That host's ``alive`` or ``stale`` (None: a host that never registered)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "container": self.container,
            "container_id": self.container_id,
            "status": self.status,
            "engine": self.engine,
            "image": self.image,
            "enabled": self.enabled,
            "schedule": self.schedule,
            "retention": self.retention,
            "target": self.target,
            "databases": self.databases,
            "verify": self.verify,
            "errors": self.errors,
            "last_snapshot": self.last_snapshot,
            "next_run": isoformat(self.next_run),
            "policy_source": self.policy_source,
            "notify": self.notify,
            "stale_after": self.stale_after,
            "ping": self.ping,
            "host": self.host,
            "host_status": self.host_status,
        }


def policy_from_labels(labels: Mapping[str, str], container_name: str) -> InstancePolicy:
    """:func:`backup.labels.parse_labels` against the engines this Holdfast knows."""
    return parse_labels(labels, container_name, known_engines=engine_names())


def effective_labels(labels: Mapping[str, str],
                     override: Mapping[str, Any] | None) -> dict[str, str]:
    """The container's labels with an API-set policy laid over them: the
    catalog's override wins, field by field."""
    merged = dict(labels)
    for key, value in (override or {}).items():
        if value is not None:
            merged[PREFIX + key] = str(value)
    return merged


def classify(svc: Services, container: DatabaseContainer) -> Instance | None:
    """An opted-in container as an instance (policy, engine, errors); None if it
    has not opted in. Probes binaries only when the image name says nothing."""
    if parse_bool(container.labels.get(PREFIX + "enable", "")) is not True:
        return None  # holdfast.enable=false or absent: ignored, not even probed
    if not in_scope(container.labels, svc.settings.scope):
        return None  # another scope's container (HOLDFAST_SCOPE): not this Holdfast's
    if is_set_aside(container.name):
        # Kept aside by a replace or its undo (restore.swap) with the labels it
        # had, which Docker cannot change: the container in its place is the source.
        return None
    name = policy_from_labels(container.labels, container.name).name
    record = svc.catalog.get_instance(name)
    labels = effective_labels(container.labels, record.policy_override if record else None)
    policy = policy_from_labels(labels, container.name)
    errors = [*policy.errors, *_policy_problems(svc, policy)]
    engine = detect_engine(container.image, policy.engine)
    if engine is None and container.running:
        try:
            binaries = svc.docker.binaries_present(container.id, [b for b, _ in BINARY_HINTS])
            engine = detect_engine(container.image, None, binaries)
        except HoldfastError as exc:
            logger.debug("binary probe of %s failed: %s", container.name, exc)
    if engine is None:
        errors.append("cannot tell the engine from the image or its binaries; "
                      "set the holdfast.engine label")
    clash = name_clash(svc, name, record, container)
    if clash is not None:
        errors.append(clash)
    return Instance(policy=policy, container=container, engine=engine, errors=tuple(errors),
                    clash=clash)


def name_clash(svc: Services, name: str, record: InstanceRecord | None,
               container: DatabaseContainer) -> str | None:
    """Why ``container`` may not be instance ``name`` here, or None: the name
    is recorded for another container on another host whose daemon is alive.
    The same container seen by two hosts (one engine managed twice) is no clash:
    the schedule's slots keep its runs single."""
    here = svc.host_name()
    if record is None or record.host in (None, here) or record.container_id == container.id:
        return None
    if host_statuses(svc).get(record.host or "") != "alive":
        return None  # a host that is gone gives its names up
    return (f"instance name {name} is on two hosts: {record.host} (container "
            f"{record.container_name}, backed up there) and {here} (container "
            f"{container.name}, not backed up); rename one with the holdfast.name label")


def _policy_problems(svc: Services, policy: InstancePolicy) -> list[str]:
    """What a policy that parses still cannot do here: a target that is not
    configured (the message a backup to it is refused with), a schedule whose
    trigger fails. Each stays this instance's error; the others are unaffected.
    (A ``holdfast.notify`` channel this process lacks is not one: the CLI has
    no channels, and no notification setting may stop a backup; the daemon
    warns of it instead, :class:`~service.usecases.notifications.Notifier`.)"""
    problems = []
    if policy.target not in svc.settings.targets:
        problems.append(f"holdfast.target: {unknown_target(policy.target, svc.settings.targets)}")
    setting = svc.settings.recipients_setting(policy.target)
    problem = encrypt_label_problem(policy.encrypt, policy.target,
                                    setting[0] if setting else None)
    if problem is not None:
        problems.append(problem)
    if policy.schedule:
        problem = schedule_problem(policy.schedule)
        if problem is not None:
            problems.append(problem)
    return problems


def choose_instances(candidates: Iterable[Instance]) -> list[Instance]:
    """One instance per name: a running container wins over stopped ones that
    claim the same name (an old container left behind by a re-creation)."""
    chosen: dict[str, Instance] = {}
    for instance in candidates:
        previous = chosen.get(instance.name)
        if previous is None or (_running(instance) and not _running(previous)):
            chosen[instance.name] = instance
    return sorted(chosen.values(), key=lambda i: i.name)


def record_instances(svc: Services, instances: Iterable[Instance]) -> None:
    """Record each instance as discovered on this host. One whose name another
    host has (:func:`name_clash`) is not: its clash is recorded on that host's
    row instead, where both hosts' listings show it, until it is gone."""
    now, host = utcnow(), svc.host_name()
    for instance in instances:
        assert instance.container is not None
        existing = svc.catalog.get_instance(instance.name)
        if instance.clash is not None:
            if existing is not None and existing.clash != instance.clash:
                logger.error("not recording %s: %s", instance.name, instance.clash,
                             extra={"instance": instance.name})
                svc.catalog.set_instance_clash(instance.name, instance.clash, host)
            continue
        svc.catalog.upsert_instance(InstanceRecord(
            name=instance.name,
            engine=instance.engine,
            container_id=instance.container.id,
            container_name=instance.container.name,
            image=instance.container.image,
            labels={k: v for k, v in instance.container.labels.items()
                    if k.startswith(PREFIX) and k not in UNSTORED_LABELS},
            error="; ".join(instance.errors) or None,
            first_seen=existing.first_seen if existing else now,
            last_seen=now,
            policy_override=existing.policy_override if existing else None,
            host=host,
        ))


def release_clashes(svc: Services, instances: Iterable[Instance]) -> None:
    """Clear the name clashes this host reported that ``instances`` (all it
    discovers now) no longer have: the clashing container is gone or renamed."""
    here = svc.host_name()
    clashing = {instance.name for instance in instances if instance.clash is not None}
    for record in svc.catalog.list_instances():
        if record.clash_host == here and record.name not in clashing:
            svc.catalog.set_instance_clash(record.name, None, None)
            logger.info("instance name %s no longer clashes on this host", record.name,
                        extra={"instance": record.name})


def live_instances(svc: Services) -> list[Instance]:
    """Every opted-in container as an instance, one per name. Writes nothing."""
    candidates = (classify(svc, c) for c in svc.docker.labelled_containers(
        include_stopped=True, scope=svc.settings.scope))
    return choose_instances(c for c in candidates if c is not None)


def refresh_instances(svc: Services) -> list[Instance]:
    """:func:`live_instances`, recorded in the catalog (labels, engine, container)."""
    instances = live_instances(svc)
    record_instances(svc, instances)
    release_clashes(svc, instances)
    return instances


def _running(instance: Instance) -> bool:
    return instance.container is not None and instance.container.running


NextRun = Callable[[str, str | None], datetime | None]
"""(instance, schedule) -> when its next scheduled run is, if any."""


def list_instances(svc: Services, next_run: NextRun | None = None,
                   instances: list[Instance] | None = None) -> list[InstanceView]:
    """Discovered instances (live, or ``instances`` if the caller already has
    them), plus catalogued ones whose container is gone. ``next_run`` is the
    daemon's scheduler; without one, the next run is estimated from the
    schedule and the last snapshot. Writes nothing."""
    live = {i.name: i for i in (live_instances(svc) if instances is None else instances)}
    here, hosts = svc.host_name(), host_statuses(svc)
    views = []
    for name in sorted(set(live) | {record.name for record in svc.catalog.list_instances()}):
        record = svc.catalog.get_instance(name)
        latest = svc.catalog.latest_snapshot(name)
        instance = live.get(name)
        if instance is not None and instance.container is not None:
            view = replace(_live_view(instance, record, latest, next_run), host=here,
                           host_status=hosts.get(here))
            if record is not None and record.clash and record.clash not in view.errors:
                view = replace(view, errors=[*view.errors, record.clash])
            views.append(view)
        else:
            assert record is not None
            view = _missing_view(record, latest)
            if record.host not in (None, here):  # another daemon's: it lives on that host
                view = replace(view, status="remote", container=record.container_name,
                               container_id=record.container_id)
            views.append(replace(view, host_status=hosts.get(record.host or "")))
    return views


def _last_snapshot(latest: Snapshot | None) -> dict[str, Any] | None:
    return None if latest is None else {
        "id": latest.id, "status": str(latest.status),
        "created_at": isoformat(latest.created_at), "error": latest.error,
    }


def _policy_source(record: InstanceRecord | None) -> str:
    return "api" if record is not None and record.policy_override else "labels"


def _live_view(instance: Instance, record: InstanceRecord | None, latest: Snapshot | None,
               next_run: NextRun | None) -> InstanceView:
    assert instance.container is not None
    policy, running = instance.policy, instance.container.running
    due = None
    if running and not instance.errors:
        due = (next_run(instance.name, policy.schedule) if next_run is not None else
               estimate_next_run(policy.schedule, latest.created_at if latest else None,
                                 utcnow()))
    return InstanceView(
        name=instance.name, container=instance.container.name,
        container_id=instance.container.id, status="running" if running else "stopped",
        engine=instance.engine, image=instance.container.image, enabled=True,
        schedule=policy.schedule, retention=dict(policy.retention), target=policy.target,
        databases=list(policy.databases), errors=list(instance.errors),
        last_snapshot=_last_snapshot(latest), policy_source=_policy_source(record),
        next_run=due, verify=policy.verify, **_alerting(policy),
    )


def _alerting(policy: InstancePolicy) -> dict[str, Any]:
    return {"notify": None if policy.notify is None else list(policy.notify),
            "stale_after": policy.stale_after, "ping": policy.ping is not None}


def _missing_view(record: InstanceRecord, latest: Snapshot | None) -> InstanceView:
    policy = policy_from_labels(effective_labels(record.labels, record.policy_override),
                                record.container_name or record.name)
    return InstanceView(
        name=record.name, container=None, container_id=None, status="missing",
        engine=record.engine, image=record.image, enabled=False,
        schedule=policy.schedule, retention=dict(policy.retention), target=policy.target,
        databases=list(policy.databases), errors=[], last_snapshot=_last_snapshot(latest),
        policy_source=_policy_source(record), verify=policy.verify, **_alerting(policy),
        host=record.host,
    )


POLICY_FIELDS = ("schedule", "retention", "target", "databases", "verify", "notify",
                 "stale_after", "jobs", "mode")


def set_policy(svc: Services, name: str, override: Mapping[str, str | None] | None, *,
               applied: Callable[[], object] | None = None,
               next_run: NextRun | None = None) -> InstanceView:
    """Store an API-set policy for ``name`` (fields: schedule, retention, target,
    databases, verify, notify, stale_after, jobs, mode, in label syntax) that overrides its
    labels and survives restarts;
    ``None`` or an empty mapping clears it. Refuses values that do not parse.
    ``applied`` runs after the change (the daemon's discovery refresh, so the
    scheduler follows at once); returns the instance as it is now."""
    record = svc.catalog.get_instance(name)
    if record is None:
        raise InstanceNotFound(f"no instance named {name!r}; 'holdfast instances' lists them")
    # Applying the change and showing the result need the engine: refuse before
    # storing anything rather than report a failure for a change that took effect.
    svc.docker.ping()
    cleaned = {key: value for key, value in (override or {}).items() if value is not None}
    unknown = sorted(set(cleaned) - set(POLICY_FIELDS))
    if unknown:
        raise InvalidLabels(f"unknown policy field(s) {', '.join(unknown)}; "
                            f"use {', '.join(POLICY_FIELDS)}")
    policy = policy_from_labels(effective_labels(record.labels, cleaned),
                                record.container_name or name)
    errors = [*policy.errors, *_policy_problems(svc, policy)]
    if errors:
        raise InvalidLabels("; ".join(errors))  # before storing: a refused policy is not kept
    svc.catalog.set_policy_override(name, cleaned or None)
    if applied is not None:
        applied()
    return next(view for view in list_instances(svc, next_run) if view.name == name)


def find_instance(svc: Services, name: str) -> Instance:
    """The instance called ``name``. Tries the container the catalog last saw
    for it (one inspect), and only if that one is gone, stopped or renamed,
    lists the whole engine."""
    record = svc.catalog.get_instance(name)
    if record is not None and record.container_id:
        try:
            known = classify(svc, svc.docker.inspect(record.container_id))
        except NotFound:
            known = None
        if known is not None and known.name == name and _running(known):
            return known
    for instance in live_instances(svc):
        if instance.name == name:
            return instance
    hint = ("its container is gone; its snapshots remain (holdfast snapshots " + name + ")"
            if svc.catalog.get_instance(name) else
            "label its container holdfast.enable=true; 'holdfast instances' lists them")
    raise InstanceNotFound(f"no running instance named {name!r}: {hint}")


@dataclass(frozen=True)
class ForgottenInstance:
    """What :func:`forget_instance` removed from the catalog."""

    instance: str
    snapshots: list[str]
    """Ids of the snapshot rows removed; their objects stay in the targets."""

    def to_json(self) -> dict[str, Any]:
        return {"instance": self.instance, "snapshots": self.snapshots, "objects_kept": True}


def forget_instance(svc: Services, name: str) -> ForgottenInstance:
    """Remove ``name`` from the catalog: its instance record, its API-set policy
    and its snapshot rows. The snapshots' objects stay in the targets (``holdfast
    catalog rebuild`` lists them again). Refused with a Conflict while the
    instance has a run in progress, and while its container is still present,
    labelled and in scope: discovery would record it again at once."""
    if svc.catalog.get_instance(name) is None and svc.catalog.latest_snapshot(name) is None:
        raise InstanceNotFound(f"no instance named {name!r} in the catalog; "
                               "'holdfast instances' lists them")
    # Holding the instance's gate keeps this process from starting a run meanwhile.
    svc.gate.claim(name, "forget")
    try:
        _refuse_while_busy(svc, name)
        live = next((i for i in live_instances(svc) if i.name == name), None)
        if live is not None and live.container is not None:
            raise Conflict(
                f"container {live.container.name} is still labelled for {name}, which would "
                "be discovered again at once; remove the container (or set "
                f"holdfast.enable=false on it), then forget {name}")
        _had_record, snapshot_ids = svc.catalog.forget_instance(name)
    finally:
        svc.gate.release(name, "forget")
    logger.info("forgot instance %s and %d snapshot row(s); their objects stay in the targets",
                name, len(snapshot_ids))
    return ForgottenInstance(instance=name, snapshots=snapshot_ids)


def _refuse_while_busy(svc: Services, name: str) -> None:
    jobs = [job for job in svc.catalog.list_jobs(limit=10_000,
                                                 statuses=(JobStatus.QUEUED, JobStatus.RUNNING))
            if job.instance == name]
    if jobs:
        raise Conflict(f"{name} has a {jobs[0].kind} job {jobs[0].id} {jobs[0].status}; "
                       f"wait for it to finish, then forget {name}")
    running = [s for s in svc.catalog.list_snapshots(name, SnapshotStatus.RUNNING)
               if may_be_running(s.runner)]
    if running:
        raise Conflict(f"snapshot {running[0].id} of {name} is still being written; "
                       f"wait for it to finish, then forget {name}")
