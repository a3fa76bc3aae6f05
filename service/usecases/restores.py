"""Use cases for restores: plan a fresh container from a snapshot, then build it.

:func:`prepare_restore` reads the snapshot's manifest and the engine's state
and lets :func:`restore.planner.plan_restore` decide names, volumes, image,
environment and every refusal, writing nothing; :func:`execute_restore` hands
the plan to the restore runner, which creates the container and volumes,
loads the data and waits until the database accepts connections. The source
of the snapshot is never touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from backup.encryption import Identities, require_identities
from backup.engines import Engine, get_engine
from backup.errors import (
    DockerRefused,
    HoldfastError,
    ImageNotFound,
    InstanceNotFound,
    InvalidInput,
    NetworkNotFound,
    PortTaken,
    SnapshotNotFound,
    SnapshotNotRestorable,
    UnsupportedEngine,
)
from backup.images import check_image_reference, reference_problem
from backup.phases import Phase, PhaseCallback, no_phases
from backup.ports import ContainerEndpoints
from backup.storage import Storage
from backup.streams import ProgressCallback
from backup.types import (
    DatabaseContainer,
    Manifest,
    Snapshot,
    SnapshotStatus,
    isoformat,
    redact_command,
    utcnow,
)
from restore.copies import (
    CopyOptions,
    CopyRecord,
    RestoreOptions,
    check_restore_options,
    connection_urls,
    expiry_after,
)
from restore.planner import RestorePlan, plan_restore
from restore.runner import restore_snapshot
from restore.swap import Replacement, check_replace_request, staging_plan, stamp, volume_base
from restore.warm import WarmChoice
from service.bootstrap import Services
from service.usecases.checkpoints import latest_tagged_snapshot
from service.usecases.copies import record_copy
from service.usecases.instances import find_instance
from service.usecases.replace import check_replace, holding_instance, marked_plan, swap_in
from service.usecases.snapshots import get_snapshot, read_manifest
from service.usecases.warm_copies import choose_warm

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestoreRequest:
    snapshot: Snapshot
    manifest: Manifest
    plan: RestorePlan
    engine: Engine
    storage: Storage
    options: CopyOptions = field(default_factory=CopyOptions)
    replace: Replacement | None = None
    """With ``replace``: the container the restore is swapped in for, once loaded."""
    identities: Identities | None = None
    """The identity an encrypted snapshot is read with (checked to open it)."""
    warm: WarmChoice = field(default_factory=WarmChoice)
    """The warm copy whose volumes are cloned instead of streaming, or why none."""


@dataclass(frozen=True)
class RestoreResult:
    """What the next step needs, never a password: ``connection`` holds
    ``url_template`` (``HOST:PORT`` to fill) and ``urls`` (``published``, and
    per network by alias or name), passwords as ``{VARIABLE}`` placeholders."""

    snapshot_id: str
    container: str
    container_id: str
    volumes: list[str]
    image: str
    databases: list[str]
    seconds: float
    endpoints: ContainerEndpoints = field(default_factory=ContainerEndpoints)
    connection: dict[str, Any] | None = None
    expires_at: datetime | None = None
    replaced: dict[str, Any] | None = None
    """With ``replace``: the old container, now ``container``, ``container_id``,
    ``status`` (stopped)."""
    method: str = "stream"
    """``stream``, or ``reflink``/``copy`` for a warm copy's volumes cloned."""
    warm: str | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot_id,
            "container": self.container,
            "container_id": self.container_id,
            "volumes": self.volumes,
            "image": self.image,
            "databases": self.databases,
            "seconds": round(self.seconds, 3),
            "networks": {name: {"ip_address": e.ip_address, "aliases": list(e.aliases)}
                         for name, e in sorted(self.endpoints.networks.items())},
            "ports": {key: [{"host_ip": ip, "host_port": port} for ip, port in bindings]
                      for key, bindings in sorted(self.endpoints.ports.items())},
            **(self.connection or {"url_template": None, "urls": {}}),
            "expires_at": isoformat(self.expires_at),
            "replaced": self.replaced,
            "method": self.method, "warm": self.warm, "note": self.note,
        }


def secret_values(svc: Services, manifest: Manifest) -> dict[str, str]:
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


def prepare_restore(svc: Services, snapshot_id: str, new_name: str | None,
                    image: str | None = None, force: bool = False,
                    options: RestoreOptions | None = None,
                    replace: str | None = None) -> RestoreRequest:
    """Every check a restore of the snapshot ``snapshot_id`` (an id or an
    unambiguous prefix) can fail, before anything is created; ``options`` as
    :func:`restore.copies.check_restore_options` takes them. ``replace`` names
    a container to swap the restore in for (:mod:`restore.swap`; ``new_name``
    may then be None)."""
    if image is not None:
        check_image_reference(image)
    return _prepare(svc, get_snapshot(svc, snapshot_id), new_name, image, force, options,
                    replace)


def prepare_latest_restore(svc: Services, instance: str, new_name: str | None,
                           image: str | None = None, force: bool = False,
                           options: RestoreOptions | None = None,
                           replace: str | None = None,
                           tags: Mapping[str, str] | None = None) -> RestoreRequest:
    """:func:`prepare_restore` of the newest complete snapshot of ``instance``;
    with ``tags``, of the newest complete one carrying them all
    (:func:`prepare_tagged_restore`)."""
    if tags:
        return prepare_tagged_restore(svc, instance, tags, new_name, image, force, options,
                                      replace)
    if image is not None:
        check_image_reference(image)
    return _prepare(svc, latest_complete_snapshot(svc, instance), new_name, image, force,
                    options, replace)


def newest_snapshot(svc: Services, instance: str,
                    tags: Mapping[str, str] | None = None) -> Snapshot:
    """The snapshot :func:`prepare_latest_restore` restores: the newest complete
    one of ``instance``, carrying every tag in ``tags`` if given."""
    return latest_tagged_snapshot(svc, instance, tags) if tags else \
        latest_complete_snapshot(svc, instance)


def prepare_tagged_restore(svc: Services, instance: str, tags: Mapping[str, str],
                           new_name: str | None, image: str | None = None,
                           force: bool = False, options: RestoreOptions | None = None,
                           replace: str | None = None) -> RestoreRequest:
    """:func:`prepare_restore` of the newest complete snapshot of ``instance``
    carrying every tag in ``tags``; :class:`SnapshotNotFound` naming the tags
    if there is none."""
    if image is not None:
        check_image_reference(image)
    return _prepare(svc, latest_tagged_snapshot(svc, instance, tags), new_name, image, force,
                    options, replace)


def _check_copy_options(svc: Services, options: RestoreOptions | None,
                        engine: Engine) -> CopyOptions:
    """``options`` checked, the network known to the engine (404 otherwise) and
    a fixed host port not published already by a running container (409)."""
    checked = check_restore_options(options, engine.service_port)
    if checked.network is not None and not svc.docker.network_exists(checked.network):
        raise NetworkNotFound(f"no Docker network named {checked.network!r}; create it "
                              "first (docker network create) or name another")
    fixed = [port for port in checked.published if port.host_port]
    if fixed:
        in_use = svc.docker.published_host_ports()
        for port in fixed:
            clash = {ip for ip, number in in_use if number == port.host_port}
            if port.host_ip in clash or clash & {"0.0.0.0", "::", ""} or \
                    (clash and port.host_ip in ("0.0.0.0", "::")):
                raise PortTaken(f"host port {port.host_port} is already published by a "
                                "container; choose another, or publish 0 for a free one")
    return checked


def _check_publishable(svc: Services, plan: RestorePlan) -> None:
    """A port is published only if the network the container is created on
    (the first it joins: ``network``, else the source's first) is not internal:
    on an internal one Docker creates and starts the container and silently
    publishes nothing, so the request is refused instead (400)."""
    spec = plan.container
    if spec.published and spec.networks and svc.docker.network_internal(spec.networks[0]):
        raise InvalidInput(f"cannot publish: network {spec.networks[0]} is internal and Docker "
                           "publishes no port of a container on it; restore without publish, "
                           "or onto a network that is not internal")


def check_image(svc: Services, image: str, given: bool) -> None:
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


def _prepare(svc: Services, snapshot: Snapshot, new_name: str | None, image: str | None,
             force: bool, options: RestoreOptions | None = None,
             replace: str | None = None) -> RestoreRequest:
    snapshot_id = snapshot.id
    if replace is not None:
        check_replace_request(replace, new_name, force=force, options=options)
    elif new_name is None:
        raise InvalidInput("name the fresh container (name, --name), or give replace "
                           "(--replace) to swap the restore in for a container")
    if snapshot.status != SnapshotStatus.COMPLETE:
        raise SnapshotNotRestorable(
            f"snapshot {snapshot_id} is {snapshot.status}, only complete snapshots restore"
        )
    storage = svc.target(snapshot.target)
    manifest = read_manifest(storage, snapshot)
    engine = get_engine(manifest.engine, manifest.data_format)
    if manifest.data_format not in engine.read_formats:
        raise UnsupportedEngine(
            f"snapshot {snapshot_id} has data format {manifest.data_format}, "
            f"this Holdfast reads {', '.join(engine.read_formats)}"
        )
    identities = None
    if manifest.encryption is not None:  # before anything is created: say which keys
        identities = require_identities(svc.identities(), manifest.recipients,
                                        f"snapshot {snapshot_id}")
    checked = _check_copy_options(svc, options, engine)
    replacement = None
    if replace is not None:  # planned as NAME-<time>, staged as NAME-restoring-<time>
        replacement = check_replace(svc, replace, snapshot_engine=manifest.engine,
                                    snapshot_id=snapshot_id, at=stamp(utcnow()))
        new_name = volume_base(replace, replacement.at)
    assert new_name is not None
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
        secret_values=secret_values(svc, manifest),
        taken_container_names=svc.docker.container_names(),
        existing_volumes=existing, image=image, force=force, volume_users=users,
        options=checked,
    )
    if replacement is not None:
        plan = staging_plan(plan, replacement.target.name, replacement.at)
    check_image(svc, plan.container.image, given=image is not None)
    _check_publishable(svc, plan)
    warm = choose_warm(svc, plan, snapshot.instance, wanted=checked.warm,
                       image_given=image is not None)
    return RestoreRequest(snapshot=snapshot, manifest=manifest, plan=plan, engine=engine,
                          storage=storage, options=checked, replace=replacement,
                          identities=identities, warm=warm)


def execute_restore(svc: Services, request: RestoreRequest,
                    progress: ProgressCallback | None = None,
                    job_id: str | None = None,
                    cancelled: Callable[[], bool] = lambda: False,
                    phase: PhaseCallback = no_phases) -> RestoreResult:
    """Run the restore, then record the container as a copy (of job
    ``job_id``, with its TTL); if it cannot be recorded it is removed again,
    so no container a restore made is unknown to the reaper. A restore
    ``cancelled`` before it returns removes what it created, as a failed one.
    A replace holds the gate of the instance replaced throughout
    (:func:`~service.usecases.replace.holding_instance`), labels its staging
    container with who made it, and is cancelled up to the swap's last step."""
    plan, replacement = request.plan, request.replace
    with contextlib.ExitStack() as held:
        if replacement is not None:
            held.enter_context(holding_instance(svc, replacement, job_id))
            plan = marked_plan(plan, replacement, job_id)
        outcome = restore_snapshot(
            manifest=request.manifest, plan=plan, engine=request.engine,
            runtime=svc.docker, runner=svc.docker, storage=request.storage,
            ready_timeout=svc.settings.ready_timeout, progress=progress, cancelled=cancelled,
            phase=phase, identities=request.identities, copy_from=request.warm.sources,
        )
        logger.info("restored %s into %s (%s)", request.snapshot.id, outcome.container.name,
                    outcome.method,
                    extra={"instance": request.snapshot.instance,
                           "snapshot": request.snapshot.id})
        container, expires_at, replaced = outcome.container, None, None
        if replacement is not None:  # a replace is the old container's, not a copy
            phase(Phase.SWAPPING)
            swapped = swap_in(svc, replacement.target, container, plan, request.engine,
                              replacement.at, cancelled)
            container, replaced = swapped.container, swapped.to_json()
        else:
            expires_at = _record(svc, request, container.id, job_id).expires_at
    endpoints = _endpoints(svc, container.id)
    return RestoreResult(
        snapshot_id=request.snapshot.id, container=container.name,
        container_id=container.id, volumes=list(outcome.volumes),
        image=request.plan.container.image, databases=list(outcome.databases),
        seconds=outcome.seconds, endpoints=endpoints,
        connection=connection_urls(request.engine, request.manifest, endpoints,
                                   container.name),
        expires_at=expires_at, replaced=replaced, method=outcome.method,
        warm=request.warm.warm.name if request.warm.warm else None,
        note=request.warm.note or outcome.note,
    )


def _record(svc: Services, request: RestoreRequest, container_id: str,
            job_id: str | None) -> CopyRecord:
    plan, now = request.plan, utcnow()
    ttl = request.options.ttl_seconds
    copy = CopyRecord(
        name=plan.container.name, container_id=container_id,
        snapshot_id=request.snapshot.id, instance=request.snapshot.instance, job_id=job_id,
        volumes=tuple(v for v in plan.volume_names if v not in plan.reused_volumes),
        created_at=now, expires_at=None if ttl is None else expiry_after(now, ttl))
    try:
        return record_copy(svc, copy)
    except BaseException:
        logger.error("could not record copy %s; removing it again", copy.name)
        svc.docker.remove_container(container_id)
        for volume in copy.volumes:
            svc.docker.remove_volume(volume)
        raise


def _endpoints(svc: Services, container_id: str) -> ContainerEndpoints:
    try:
        return svc.docker.container_endpoints(container_id)
    except HoldfastError as exc:  # the restore itself succeeded: say so, without them
        logger.warning("could not read the networks and ports of %s: %s", container_id[:12], exc)
        return ContainerEndpoints()


def run_restore(svc: Services, snapshot_id: str, new_name: str, image: str | None = None,
                progress: ProgressCallback | None = None, force: bool = False,
                options: RestoreOptions | None = None) -> RestoreResult:
    return execute_restore(
        svc, prepare_restore(svc, snapshot_id, new_name, image, force, options), progress)

