"""Use cases for restores: plan a fresh container from a snapshot, then build it.

:func:`prepare_restore` reads the snapshot's manifest and the engine's state
and lets :func:`restore.planner.plan_restore` decide names, volumes, image,
environment and every refusal, writing nothing; :func:`execute_restore` hands
the plan to the restore runner, which creates the container and volumes,
loads the data and waits until the database accepts connections. The source
of the snapshot is never touched.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from backup.engines import Engine, get_engine
from backup.errors import (
    DockerRefused,
    ImageNotFound,
    InstanceNotFound,
    InvalidInput,
    SnapshotNotFound,
    SnapshotNotRestorable,
    UnsupportedEngine,
)
from backup.images import check_image_reference, reference_problem
from backup.storage import Storage
from backup.streams import ProgressCallback
from backup.types import (
    DatabaseContainer,
    Manifest,
    Snapshot,
    SnapshotStatus,
    redact_command,
)
from restore.planner import RestorePlan, plan_restore
from restore.runner import restore_snapshot
from service.bootstrap import Services
from service.usecases.instances import find_instance
from service.usecases.snapshots import get_snapshot, read_manifest

logger = logging.getLogger(__name__)


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


def latest_complete_snapshot(svc: Services, instance: str) -> Snapshot:
    """The newest complete snapshot of ``instance``. :class:`InstanceNotFound`
    if neither the catalog nor the engine knows the instance, else
    :class:`SnapshotNotFound` naming the instance if none is complete."""
    complete = svc.catalog.list_snapshots(instance=instance, status=SnapshotStatus.COMPLETE)
    if complete:
        return complete[0]
    if svc.catalog.get_instance(instance) is None and \
            svc.catalog.latest_snapshot(instance) is None:
        find_instance(svc, instance)  # InstanceNotFound, unless a container is labelled so
    raise SnapshotNotFound(f"instance {instance} has no complete snapshot to restore; "
                           f"'holdfast snapshots {instance}' lists its snapshots")


def prepare_restore(svc: Services, snapshot_id: str, new_name: str,
                    image: str | None = None, force: bool = False) -> RestoreRequest:
    """Every check a restore of the snapshot ``snapshot_id`` (an id or an
    unambiguous prefix) can fail, before anything is created."""
    if image is not None:
        check_image_reference(image)
    return _prepare(svc, get_snapshot(svc, snapshot_id), new_name, image, force)


def prepare_latest_restore(svc: Services, instance: str, new_name: str,
                           image: str | None = None, force: bool = False) -> RestoreRequest:
    """:func:`prepare_restore` of the newest complete snapshot of ``instance``."""
    if image is not None:
        check_image_reference(image)
    return _prepare(svc, latest_complete_snapshot(svc, instance), new_name, image, force)


def _check_image(svc: Services, image: str, given: bool) -> None:
    """The image the new container will run is a valid reference and on the engine."""
    hint = "pull it or pass --image" if not given else "pull it first"
    if not given and reference_problem(image) is not None:
        raise InvalidInput(f"the snapshot's recorded image {image[:80]!r} is not a valid "
                           "image reference; pass --image")
    try:
        present = svc.docker.image_exists(image)
    except DockerRefused as exc:
        # The grammar above is Docker's own, so this means an engine stricter
        # than it; the reference is still what to fix, not the engine.
        raise InvalidInput(f"image {image!r} is not accepted by Docker: {exc}") from exc
    if not present:
        raise ImageNotFound(f"image {image} is not on this Docker engine; {hint}")


def _prepare(svc: Services, snapshot: Snapshot, new_name: str, image: str | None,
             force: bool) -> RestoreRequest:
    snapshot_id = snapshot.id
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
    _check_image(svc, plan.container.image, given=image is not None)
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

