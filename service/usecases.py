"""The use cases: everything the CLI, the API and the scheduler can ask for.

Each function takes the :class:`~service.bootstrap.Services` and plain values,
and returns records or raises :mod:`backup.errors`. The entry points only parse
input, call one of these, and format the result; none holds logic of its own.
Long operations are split into ``prepare_*`` (every check that can fail on bad
input, done before anything is written) and ``execute_*`` (the work), so the
API can answer bad input at once and run the work as a job.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from backup.engines import Engine, get_engine
from backup.engines.detect import BINARY_HINTS, detect_engine
from backup.errors import (
    Cancelled,
    Conflict,
    ContainerNotRunning,
    DockerUnavailable,
    HoldfastError,
    InstanceNotFound,
    InvalidLabels,
    NotFound,
    SnapshotNotFound,
    SnapshotNotRestorable,
    StorageError,
    UnsupportedEngine,
)
from backup.labels import PREFIX, InstancePolicy, parse_bool, parse_labels
from backup.pipeline import (
    data_key,
    delete_snapshot_objects,
    is_manifest_key,
    manifest_key,
    new_snapshot_id,
    take_snapshot,
)
from backup.retention import RetentionPolicy, plan_retention
from backup.storage import Storage
from backup.streams import ProgressCallback, read_all
from backup.types import (
    DatabaseContainer,
    Manifest,
    Snapshot,
    SnapshotStatus,
    isoformat,
    redact_command,
    utcnow,
)
from restore.planner import RestorePlan, plan_restore
from restore.runner import restore_snapshot
from service.bootstrap import Services
from service.catalog import InstanceRecord
from service.runs import AlreadyRunning, current_runner, may_be_running

logger = logging.getLogger(__name__)
_MANIFEST_LIMIT = 1024 * 1024


# --- instances ------------------------------------------------------------------


@dataclass(frozen=True)
class Instance:
    """A discovered instance: its container (if any), policy and engine."""

    policy: InstancePolicy
    container: DatabaseContainer | None
    engine: str | None
    errors: tuple[str, ...]

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
    next_run: datetime | None = None
    policy_source: str = "labels"

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
            "errors": self.errors,
            "last_snapshot": self.last_snapshot,
            "next_run": isoformat(self.next_run),
            "policy_source": self.policy_source,
        }


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
    name = parse_labels(container.labels, container.name).name
    record = svc.catalog.get_instance(name)
    labels = effective_labels(container.labels, record.policy_override if record else None)
    policy = parse_labels(labels, container.name)
    errors = list(policy.errors)
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
    return Instance(policy=policy, container=container, engine=engine, errors=tuple(errors))


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
    now = utcnow()
    for instance in instances:
        assert instance.container is not None
        existing = svc.catalog.get_instance(instance.name)
        svc.catalog.upsert_instance(InstanceRecord(
            name=instance.name,
            engine=instance.engine,
            container_id=instance.container.id,
            container_name=instance.container.name,
            image=instance.container.image,
            labels={k: v for k, v in instance.container.labels.items() if k.startswith(PREFIX)},
            error="; ".join(instance.errors) or None,
            first_seen=existing.first_seen if existing else now,
            last_seen=now,
            policy_override=existing.policy_override if existing else None,
        ))


def discover(svc: Services) -> list[Instance]:
    """Live view of every opted-in container, one per instance name, recorded
    in the catalog."""
    candidates = (classify(svc, c) for c in svc.docker.labelled_containers(include_stopped=True))
    instances = choose_instances(c for c in candidates if c is not None)
    record_instances(svc, instances)
    return instances


def _running(instance: Instance) -> bool:
    return instance.container is not None and instance.container.running


NextRun = Callable[[str, str | None], datetime | None]
"""(instance, schedule) -> when its next scheduled run is, if any."""


def list_instances(svc: Services, next_run: NextRun | None = None,
                   instances: list[Instance] | None = None) -> list[InstanceView]:
    """Discovered instances (live, or ``instances`` if the caller already has
    them), plus catalogued ones whose container is gone."""
    live = {i.name: i for i in (discover(svc) if instances is None else instances)}
    views = []
    for name in sorted(set(live) | {record.name for record in svc.catalog.list_instances()}):
        latest = svc.catalog.latest_snapshot(name)
        last = None if latest is None else {
            "id": latest.id, "status": str(latest.status),
            "created_at": isoformat(latest.created_at), "error": latest.error,
        }
        record = svc.catalog.get_instance(name)
        source = "api" if record is not None and record.policy_override else "labels"
        instance = live.get(name)
        if instance is not None and instance.container is not None:
            policy = instance.policy
            running = instance.container.running
            views.append(InstanceView(
                name=name, container=instance.container.name,
                container_id=instance.container.id,
                status="running" if running else "stopped",
                engine=instance.engine, image=instance.container.image, enabled=True,
                schedule=policy.schedule, retention=dict(policy.retention), target=policy.target,
                databases=list(policy.databases), errors=list(instance.errors),
                last_snapshot=last, policy_source=source,
                next_run=(next_run(name, policy.schedule) if next_run and running
                          and not instance.errors else None),
            ))
        else:
            assert record is not None
            policy = parse_labels(effective_labels(record.labels, record.policy_override),
                                  record.container_name or name)
            views.append(InstanceView(
                name=name, container=None, container_id=None, status="missing",
                engine=record.engine, image=record.image, enabled=False,
                schedule=policy.schedule, retention=dict(policy.retention), target=policy.target,
                databases=list(policy.databases), errors=[], last_snapshot=last,
                policy_source=source,
            ))
    return views


POLICY_FIELDS = ("schedule", "retention", "target", "databases")


def set_policy(svc: Services, name: str, override: Mapping[str, str | None] | None) -> None:
    """Store an API-set policy for ``name`` (fields: schedule, retention, target,
    databases, in label syntax) that overrides its labels and survives restarts;
    ``None`` or an empty mapping clears it. Refuses values that do not parse."""
    record = svc.catalog.get_instance(name)
    if record is None:
        raise InstanceNotFound(f"no instance named {name!r}; 'holdfast instances' lists them")
    cleaned = {key: value for key, value in (override or {}).items() if value is not None}
    unknown = sorted(set(cleaned) - set(POLICY_FIELDS))
    if unknown:
        raise InvalidLabels(f"unknown policy field(s) {', '.join(unknown)}; "
                            f"use {', '.join(POLICY_FIELDS)}")
    policy = parse_labels(effective_labels(record.labels, cleaned), record.container_name or name)
    if policy.errors:
        raise InvalidLabels("; ".join(policy.errors))
    svc.catalog.set_policy_override(name, cleaned or None)


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
    for instance in discover(svc):
        if instance.name == name:
            return instance
    hint = ("its container is gone; its snapshots remain (holdfast snapshots " + name + ")"
            if svc.catalog.get_instance(name) else
            "label its container holdfast.enable=true; 'holdfast instances' lists them")
    raise InstanceNotFound(f"no running instance named {name!r}: {hint}")


# --- backup ---------------------------------------------------------------------


@dataclass(frozen=True)
class BackupRequest:
    instance: str
    container: DatabaseContainer
    engine: Engine
    storage: Storage
    databases: tuple[str, ...]


def prepare_backup(svc: Services, name: str, target: str | None = None) -> BackupRequest:
    """Every check a backup can fail on bad input, before anything is written."""
    return prepare_backup_for(svc, find_instance(svc, name), target)


def prepare_backup_for(svc: Services, instance: Instance,
                       target: str | None = None) -> BackupRequest:
    """:func:`prepare_backup` for an instance already discovered (the scheduler's)."""
    name = instance.name
    assert instance.container is not None
    container = svc.docker.inspect(instance.container.id)
    if not container.running:
        raise ContainerNotRunning(
            f"container {container.name} of instance {name} is not running; start it and retry"
        )
    if instance.policy.errors:
        raise InvalidLabels(f"instance {name} has label errors: {'; '.join(instance.errors)}")
    if instance.engine is None:
        raise UnsupportedEngine(f"instance {name}: {'; '.join(instance.errors)}")
    engine = get_engine(instance.engine)
    engine.check(container)
    storage = svc.target(target or instance.policy.target)
    storage.check_writable()
    return BackupRequest(instance=name, container=container, engine=engine, storage=storage,
                         databases=instance.policy.databases)


def running_elsewhere(svc: Services, instance: str) -> Snapshot | None:
    """A snapshot of ``instance`` another live process is writing right now."""
    for snapshot in svc.catalog.list_snapshots(instance=instance, status=SnapshotStatus.RUNNING):
        if snapshot.runner != current_runner() and may_be_running(snapshot.runner):
            return snapshot
    return None


def execute_backup(svc: Services, request: BackupRequest,
                   progress: ProgressCallback | None = None, *,
                   holder: str | None = None,
                   cancelled: Callable[[], bool] = lambda: False) -> Snapshot:
    """Take the snapshot. The catalog shows it ``running`` while it runs and
    ``complete`` or ``failed`` (with the reason) after; a failure re-raises.

    ``holder`` is who already claimed the instance in ``svc.gate`` (a job);
    without one, the run claims it itself. Raises :class:`AlreadyRunning` if
    another run of the instance is in progress, here or in another process.
    """
    created = utcnow()
    snapshot_id = new_snapshot_id(created)
    owned = holder is None
    if owned:
        svc.gate.claim(request.instance, snapshot_id)
    try:
        other = running_elsewhere(svc, request.instance)
        if other is not None:
            raise AlreadyRunning(request.instance, f"snapshot {other.id}")
        snapshot = Snapshot(
            id=snapshot_id, instance=request.instance, engine=request.engine.name,
            target=request.storage.name, status=SnapshotStatus.RUNNING, created_at=created,
            data_key=data_key(request.instance, snapshot_id), image=request.container.image,
            image_id=request.container.image_id, runner=current_runner(),
        )
        svc.catalog.add_snapshot(snapshot)
        context = {"instance": request.instance, "snapshot": snapshot_id}
        logger.info("backup of %s started as %s", request.instance, snapshot_id, extra=context)
        try:
            manifest = take_snapshot(
                snapshot_id=snapshot_id, instance=request.instance, created_at=created,
                container=request.container, engine=request.engine, runner=svc.docker,
                storage=request.storage, databases=request.databases, progress=progress,
                cancelled=cancelled,
            )
        except BaseException as exc:
            reason = str(exc) or type(exc).__name__
            if cancelled() and not isinstance(exc, Cancelled):
                reason = f"cancelled: Holdfast is shutting down ({reason})"
            svc.catalog.save_snapshot(snapshot.with_changes(
                status=SnapshotStatus.FAILED, finished_at=utcnow(), error=reason, runner=None))
            # Reported by whoever called us (CLI line, job record); logging it as an
            # error here too would print the same failure twice.
            logger.info("backup of %s failed: %s", request.instance, reason, extra=context)
            raise
        snapshot = snapshot.with_changes(
            status=SnapshotStatus.COMPLETE, finished_at=manifest.finished_at,
            size_bytes=manifest.size_bytes, raw_bytes=manifest.raw_bytes, sha256=manifest.sha256,
            runner=None,
        )
        svc.catalog.save_snapshot(snapshot)
        logger.info("backup of %s complete: %s, %d bytes", request.instance, snapshot_id,
                    manifest.size_bytes, extra=context)
        return snapshot
    finally:
        if owned:
            svc.gate.release(request.instance, snapshot_id)


def backup_then_prune(svc: Services, request: BackupRequest,
                      progress: ProgressCallback | None = None, *,
                      holder: str | None = None,
                      cancelled: Callable[[], bool] = lambda: False) -> tuple[Snapshot, list[str]]:
    """A backup followed by the instance's retention, as every entry point runs it.
    Returns the snapshot and the ids retention removed."""
    snapshot = execute_backup(svc, request, progress, holder=holder, cancelled=cancelled)
    return snapshot, apply_retention(svc, request.instance)


# --- snapshots ------------------------------------------------------------------


def list_snapshots(svc: Services, instance: str | None = None) -> list[Snapshot]:
    return svc.catalog.list_snapshots(instance=instance)


def get_snapshot(svc: Services, snapshot_id: str) -> Snapshot:
    snapshot = svc.catalog.get_snapshot(snapshot_id)
    if snapshot is None:
        raise SnapshotNotFound(
            f"no snapshot {snapshot_id!r}; 'holdfast snapshots' lists them"
        )
    return snapshot


def delete_snapshot(svc: Services, snapshot_id: str) -> Snapshot:
    snapshot = get_snapshot(svc, snapshot_id)
    if snapshot.status == SnapshotStatus.RUNNING and \
            may_be_running(snapshot.runner):
        raise Conflict(f"snapshot {snapshot_id} is still being written; wait for it to finish")
    delete_snapshot_objects(svc.target(snapshot.target), [(snapshot.instance, snapshot.id)])
    svc.catalog.delete_snapshot(snapshot.id)
    return snapshot


def read_manifest(storage: Storage, snapshot: Snapshot) -> Manifest:
    with storage.open(manifest_key(snapshot.instance, snapshot.id)) as chunks:
        return Manifest.from_bytes(read_all(chunks, _MANIFEST_LIMIT))


@dataclass(frozen=True)
class RebuildReport:
    added: int
    updated: int
    targets: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"added": self.added, "updated": self.updated, "targets": self.targets}


def _manifests(storage: Storage) -> Iterator[Manifest]:
    for info in storage.list():
        if is_manifest_key(info.key):
            with storage.open(info.key) as chunks:
                yield Manifest.from_bytes(read_all(chunks, _MANIFEST_LIMIT))


def rebuild_catalog(svc: Services) -> RebuildReport:
    """Recreate the catalog's snapshot rows from the manifests in every target."""
    added = updated = 0
    per_target: dict[str, int] = {}
    for target_name in sorted(svc.settings.targets):
        storage = svc.target(target_name)
        count = 0
        for manifest in _manifests(storage):
            count += 1
            existing = svc.catalog.get_snapshot(manifest.snapshot_id)
            svc.catalog.save_snapshot(Snapshot(
                id=manifest.snapshot_id, instance=manifest.instance, engine=manifest.engine,
                target=target_name, status=SnapshotStatus.COMPLETE,
                created_at=manifest.created_at, finished_at=manifest.finished_at,
                data_key=manifest.data_key, size_bytes=manifest.size_bytes,
                raw_bytes=manifest.raw_bytes, sha256=manifest.sha256, image=manifest.image,
                image_id=manifest.image_id, pinned=existing.pinned if existing else False,
            ))
            if existing is None:
                added += 1
            else:
                updated += 1
        per_target[target_name] = count
    return RebuildReport(added=added, updated=updated, targets=per_target)


# --- restore --------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreRequest:
    snapshot: Snapshot
    manifest: Manifest
    plan: RestorePlan
    engine: Engine
    storage: Storage


@dataclass(frozen=True)
class RestoreResult:
    snapshot_id: str
    container: str
    container_id: str
    volumes: list[str]
    image: str
    databases: list[str]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot_id,
            "container": self.container,
            "container_id": self.container_id,
            "volumes": self.volumes,
            "image": self.image,
            "databases": self.databases,
            "seconds": round(self.seconds, 3),
        }


def _secret_values(svc: Services, manifest: Manifest) -> dict[str, str]:
    """Secrets the new container needs: from the live source container if it
    still exists, else from Holdfast's own environment. Never from storage."""
    values: dict[str, str] = {}
    try:
        source = find_instance(svc, manifest.instance).container
    except InstanceNotFound:
        source = None
    for name in manifest.secret_env:
        if source is not None and source.env.get(name):
            values[name] = source.env[name]
        elif os.environ.get(name):
            values[name] = os.environ[name]
    in_command = redact_command(source.command)[1] if source is not None else {}
    for name in manifest.secret_args:
        if in_command.get(name):
            values[name] = in_command[name]
        elif os.environ.get(name):
            values[name] = os.environ[name]
    return values


def prepare_restore(svc: Services, snapshot_id: str, new_name: str,
                    image: str | None = None, force: bool = False) -> RestoreRequest:
    snapshot = get_snapshot(svc, snapshot_id)
    if snapshot.status != SnapshotStatus.COMPLETE:
        raise SnapshotNotRestorable(
            f"snapshot {snapshot_id} is {snapshot.status}, only complete snapshots restore"
        )
    storage = svc.target(snapshot.target)
    manifest = read_manifest(storage, snapshot)
    engine = get_engine(manifest.engine)
    if manifest.data_format != engine.data_format:
        raise UnsupportedEngine(
            f"snapshot {snapshot_id} has data format {manifest.data_format}, "
            f"this Holdfast reads {engine.data_format}"
        )
    existing = svc.docker.volume_names()
    users: dict[str, list[str]] = {}
    if force:
        for name in existing:
            info = svc.docker.get_volume(name) if name.startswith(new_name) else None
            if info is not None:
                users[name] = [user.describe() for user in info.users]
    plan = plan_restore(
        manifest, new_name=new_name,
        default_data_paths=engine.data_paths(DatabaseContainer(
            id="", name=new_name, image=manifest.image, image_id="", env=manifest.env)),
        secret_values=_secret_values(svc, manifest),
        taken_container_names=svc.docker.container_names(),
        existing_volumes=existing, image=image, force=force, volume_users=users,
    )
    if not svc.docker.image_exists(plan.container.image):
        raise HoldfastError(
            f"image {plan.container.image} is not on this Docker engine; pull it "
            "or pass --image"
        )
    return RestoreRequest(snapshot=snapshot, manifest=manifest, plan=plan, engine=engine,
                          storage=storage)


def execute_restore(svc: Services, request: RestoreRequest,
                    progress: ProgressCallback | None = None) -> RestoreResult:
    outcome = restore_snapshot(
        manifest=request.manifest, plan=request.plan, engine=request.engine,
        runtime=svc.docker, runner=svc.docker, storage=request.storage,
        ready_timeout=svc.settings.ready_timeout, progress=progress,
    )
    logger.info("restored %s into %s", request.snapshot.id, outcome.container.name,
                extra={"instance": request.snapshot.instance, "snapshot": request.snapshot.id})
    return RestoreResult(
        snapshot_id=request.snapshot.id, container=outcome.container.name,
        container_id=outcome.container.id, volumes=list(outcome.volumes),
        image=request.plan.container.image, databases=list(outcome.databases),
        seconds=outcome.seconds,
    )


def run_restore(svc: Services, snapshot_id: str, new_name: str, image: str | None = None,
                progress: ProgressCallback | None = None, force: bool = False) -> RestoreResult:
    return execute_restore(svc, prepare_restore(svc, snapshot_id, new_name, image, force),
                           progress)


# --- retention ------------------------------------------------------------------


@dataclass(frozen=True)
class PruneResult:
    instance: str
    policy: dict[str, int]
    kept: list[str]
    forgotten: list[str]
    dry_run: bool

    def to_json(self) -> dict[str, Any]:
        return {"instance": self.instance, "policy": self.policy, "kept": self.kept,
                "forgotten": self.forgotten, "dry_run": self.dry_run}


def retention_policy(svc: Services, instance: str) -> RetentionPolicy:
    """The instance's retention: its labels as last seen, under any API override."""
    record = svc.catalog.get_instance(instance)
    if record is None:
        return RetentionPolicy()
    labels = effective_labels(record.labels, record.policy_override)
    return RetentionPolicy.from_mapping(parse_labels(labels, record.name).retention)


def prune_instance(svc: Services, instance: str, *, dry_run: bool = False) -> PruneResult:
    """Decide with :func:`plan_retention`, then (unless ``dry_run``) delete what it
    forgets: each snapshot's manifest, then its data, then its catalog row."""
    policy = retention_policy(svc, instance)
    plan = plan_retention(svc.catalog.list_snapshots(instance=instance), policy)
    forgotten = list(plan.forget)
    if not dry_run:
        by_target: dict[str, list[Snapshot]] = {}
        for snapshot in forgotten:
            by_target.setdefault(snapshot.target, []).append(snapshot)
        for target, doomed in sorted(by_target.items()):
            try:
                delete_snapshot_objects(svc.target(target),
                                        [(s.instance, s.id) for s in doomed])
            except HoldfastError as exc:  # keep the rows, so the next prune retries
                logger.error("cannot prune %d snapshot(s) of %s in target %s: %s", len(doomed),
                             instance, target, exc, extra={"instance": instance})
                forgotten = [s for s in forgotten if s.target != target]
                continue
            for snapshot in doomed:
                svc.catalog.delete_snapshot(snapshot.id)
    return PruneResult(instance=instance, policy=policy.to_dict(),
                       kept=[s.id for s in plan.keep], forgotten=[s.id for s in forgotten],
                       dry_run=dry_run)


def apply_retention(svc: Services, instance: str) -> list[str]:
    """Retention after a successful snapshot; returns the ids it removed."""
    return prune_instance(svc, instance).forgotten


def prune(svc: Services, instance: str | None = None, *,
          dry_run: bool = False) -> list[PruneResult]:
    """Apply every instance's retention (or one's). Containers are looked at
    first, so labels changed by re-creating a container count; with the Docker
    engine down, the labels the catalog saw last are used."""
    try:
        discover(svc)
    except DockerUnavailable as exc:
        logger.warning("pruning with the last labels seen: %s", exc)
    if instance is not None and svc.catalog.get_instance(instance) is None \
            and not svc.catalog.list_snapshots(instance=instance):
        raise InstanceNotFound(f"no instance named {instance!r}; 'holdfast instances' lists them")
    names = [instance] if instance else sorted(
        {r.name for r in svc.catalog.list_instances()}
        | {s.instance for s in svc.catalog.list_snapshots()})
    return [prune_instance(svc, name, dry_run=dry_run) for name in names]


# --- targets --------------------------------------------------------------------


@dataclass(frozen=True)
class TargetCheck:
    name: str
    url: str
    ok: bool
    seconds: float
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "ok": self.ok,
                "seconds": round(self.seconds, 3), "error": self.error}


PROBE_PREFIX = "_holdfast-probe"
_PROBE_BYTES = 256 * 1024


def check_target(svc: Services, name: str) -> TargetCheck:
    """Write a probe object, read it back, compare, delete it."""
    url = svc.settings.targets.get(name, "")
    started = time.monotonic()
    key = f"{PROBE_PREFIX}/{socket.gethostname()}-{secrets.token_hex(4)}"
    payload = secrets.token_bytes(_PROBE_BYTES)
    try:
        storage = svc.target(name)
        storage.put(key, [payload[: _PROBE_BYTES // 2], payload[_PROBE_BYTES // 2:]])
        try:
            with storage.open(key) as chunks:
                echoed = read_all(chunks, _PROBE_BYTES)
            if echoed != payload:
                raise StorageError(f"target {name!r}: the probe read back differs from what "
                                   "was written")
        finally:
            storage.delete(key)
    except HoldfastError as exc:
        return TargetCheck(name, url, False, time.monotonic() - started, str(exc))
    return TargetCheck(name, url, True, time.monotonic() - started)


def check_targets(svc: Services, names: Iterable[str] | None = None) -> list[TargetCheck]:
    wanted = sorted(names) if names else sorted(svc.settings.targets)
    return [check_target(svc, name) for name in wanted]
