"""Applying a restore plan: fresh volumes, a fresh container, wait, load, verify.

The source of a restore is never touched: everything here writes only to the
volumes and container the plan names, which the planner has checked do not
exist yet. If any step fails (the server never becomes ready, the stored object
is corrupt, the load errors) the container and volumes this run created are
removed again, so no half-restored container is left claiming success.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from backup.cancel import raise_if_cancelled
from backup.encryption import Identities, readable
from backup.engines.base import Engine
from backup.errors import CorruptSnapshot, HoldfastError, NotReady, RestoreFailed
from backup.phases import Phase, PhaseCallback, no_phases
from backup.ports import ContainerExec, ContainerRuntime, VolumeCopy
from backup.storage.base import Storage
from backup.streams import Meter, ProgressCallback, decompress, interruptible, verify
from backup.threads import prefetched
from backup.types import DatabaseContainer, Manifest
from restore.planner import RestorePlan

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestoreOutcome:
    container: DatabaseContainer
    volumes: tuple[str, ...]
    databases: tuple[str, ...]
    seconds: float
    method: str = "stream"
    """``stream`` (the snapshot loaded), or how a warm copy's volumes were
    cloned: ``reflink``, or ``copy`` if any volume had to be copied."""
    note: str | None = None


def wait_until_ready(
    engine: Engine,
    runtime: ContainerRuntime,
    runner: ContainerExec,
    container: DatabaseContainer,
    *,
    timeout: float,
    interval: float = 0.1,
    max_interval: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    cancelled: Callable[[], bool] = lambda: False,
) -> DatabaseContainer:
    """Poll until the engine says the container's final server is ready: first
    every ``interval`` seconds, then half as often again each time up to
    ``max_interval`` (a server that is up in 2 s is seen within 0.1 s of it;
    one that takes a minute to initialise is not asked 600 times meanwhile).

    Raises :class:`RestoreFailed` (with the log tail) if the container exits,
    and :class:`NotReady` when ``timeout`` passes.
    """
    deadline = clock() + timeout
    while True:
        raise_if_cancelled(cancelled)
        current = runtime.inspect(container.id)
        if not current.running:
            raise RestoreFailed(
                f"container {container.name} stopped while starting: "
                f"{_one_line(runtime.logs_tail(container.id, 5))}"
            )
        if engine.is_ready(current, runner):
            return current
        if clock() >= deadline:
            raise NotReady(
                f"container {container.name} did not accept connections within {timeout:.0f}s"
            )
        sleep(interval)
        interval = min(interval * 1.5, max(max_interval, interval))


def restore_snapshot(
    *,
    manifest: Manifest,
    plan: RestorePlan,
    engine: Engine,
    runtime: ContainerRuntime,
    runner: ContainerExec,
    storage: Storage,
    ready_timeout: float,
    progress: ProgressCallback | None = None,
    phase: PhaseCallback = no_phases,
    cancelled: Callable[[], bool] = lambda: False,
    identities: Identities | None = None,
    copy_from: Mapping[str, str] | None = None,
) -> RestoreOutcome:
    """Build the plan's volumes and container, load the data, wait until ready.
    An encrypted snapshot is decrypted with ``identities`` as it loads.
    With ``copy_from`` (each new volume -> the warm copy's volume holding the
    same snapshot), the volumes are cloned from those instead and nothing is
    read from ``storage``: the container starts on the cloned files.
    ``phase`` hears ``creating``, then ``loading`` and ``waiting-for-ready`` in
    the order the engine needs them, and ``verifying`` if a failed load makes
    it re-check the stored object. ``cancelled`` is checked between steps and
    between the chunks loaded; a cancelled restore is undone as a failed one."""
    started = time.monotonic()
    created_volumes: list[str] = []
    container: DatabaseContainer | None = None
    try:
        phase(Phase.CREATING)
        _create_volumes(runtime, plan, created_volumes, cancelled)
        copies: list[VolumeCopy] = []
        if copy_from is not None:
            copies = _copy_volumes(runtime, plan, copy_from, phase, cancelled)
            phase(Phase.WAITING_FOR_READY)
            raise_if_cancelled(cancelled)
            container = runtime.start_container(plan.container)
            container = wait_until_ready(engine, runtime, runner, container,
                                         timeout=ready_timeout, cancelled=cancelled)
            databases = list(manifest.databases)
        elif engine.loads_before_start:
            # Files go into the volumes before the app first sees them, so an
            # app that initialises an empty volume never races the restore.
            raise_if_cancelled(cancelled)
            container = runtime.create_container(plan.container)
            phase(Phase.LOADING)
            databases = _load(engine, runner, storage, manifest, container, progress, cancelled,
                              identities)
            phase(Phase.WAITING_FOR_READY)
            raise_if_cancelled(cancelled)
            container = runtime.start(container.id)
            container = wait_until_ready(engine, runtime, runner, container,
                                         timeout=ready_timeout, cancelled=cancelled)
        else:
            raise_if_cancelled(cancelled)
            container = runtime.start_container(plan.container)
            phase(Phase.WAITING_FOR_READY)
            container = wait_until_ready(engine, runtime, runner, container,
                                         timeout=ready_timeout, cancelled=cancelled)
            phase(Phase.LOADING)
            databases = _load(engine, runner, storage, manifest, container, progress, cancelled,
                              identities)
        raise_if_cancelled(cancelled)  # seen before it returns: undone, not half-reported
        method, note = _copy_method(copies)
        return RestoreOutcome(container=container, volumes=tuple(plan.volume_names),
                              databases=tuple(databases), seconds=time.monotonic() - started,
                              method=method, note=note)
    except BaseException as exc:
        logger.info("restore of %s failed, removing what it created: %s",
                    manifest.snapshot_id, exc)
        _undo(runtime, container, created_volumes)
        if isinstance(exc, RestoreFailed | CorruptSnapshot) and not cancelled():
            # A load that fails on damaged data reports the tool's (or the archive
            # framing's) complaint, which depends on where the damage fell; say
            # what really happened if the stored object does not match its manifest.
            phase(Phase.VERIFYING)
            _raise_if_corrupt(storage, manifest)
        if isinstance(exc, HoldfastError | KeyboardInterrupt):
            raise
        raise RestoreFailed(f"restore of {manifest.snapshot_id} failed: {exc}") from exc


def _create_volumes(runtime: ContainerRuntime, plan: RestorePlan, created: list[str],
                    cancelled: Callable[[], bool]) -> None:
    """Create the plan's volumes, adding each to ``created`` (to undo); empty
    those ``--force`` reuses: the user chose to give up what they held."""
    for volume in plan.volumes:
        raise_if_cancelled(cancelled)
        if volume.name in plan.reused_volumes:
            runtime.empty_volume(volume.name)
            continue
        runtime.create_volume(volume)
        created.append(volume.name)


def _copy_volumes(runtime: ContainerRuntime, plan: RestorePlan, copy_from: Mapping[str, str],
                  phase: PhaseCallback, cancelled: Callable[[], bool]) -> list[VolumeCopy]:
    """Clone each warm volume into the plan's. A server stopped cleanly needs
    no recovery on the copy, so a restore this way takes seconds at any size."""
    phase(Phase.LOADING)
    copies = []
    for volume in plan.volumes:
        raise_if_cancelled(cancelled)
        copies.append(runtime.copy_volume(copy_from[volume.name], volume.name))
    return copies


def _copy_method(copies: list[VolumeCopy]) -> tuple[str, str | None]:
    """The outcome's ``method`` and ``note``: ``stream`` without copies,
    ``copy`` if any volume was copied byte by byte, else ``reflink``."""
    if not copies:
        return "stream", None
    copied = [c for c in copies if c.method != "reflink"]
    return ("copy", copied[0].note) if copied else ("reflink", None)


def _load(engine: Engine, runner: ContainerExec, storage: Storage, manifest: Manifest,
          container: DatabaseContainer, progress: ProgressCallback | None,
          cancelled: Callable[[], bool], identities: Identities | None) -> list[str]:
    with storage.open(manifest.data_key) as stored:
        checked = verify(Meter(progress).measure(stored), sha256=manifest.sha256,
                         size=manifest.size_bytes)
        compressed = readable(checked, encryption=manifest.encryption,
                              recipients=manifest.recipients, identities=identities,
                              what=f"snapshot {manifest.snapshot_id}")
        # Reading, checking and decompressing run a few chunks ahead in a thread
        # of their own, while this one writes to the container.
        stream = prefetched(decompress(compressed), name=f"restore-read-{manifest.snapshot_id}")
        try:
            return engine.restore(container, runner, interruptible(stream, cancelled))
        finally:
            stream.close()  # stops the reader before the stored object is closed


def _raise_if_corrupt(storage: Storage, manifest: Manifest) -> None:
    """Re-read the stored object and raise :class:`CorruptSnapshot` if it does not
    match the manifest. Only called after a failed load, so a good restore reads
    its data once."""
    try:
        with storage.open(manifest.data_key) as stored:
            for _ in verify(stored, sha256=manifest.sha256, size=manifest.size_bytes):
                pass
    except CorruptSnapshot as corrupt:
        raise CorruptSnapshot(
            f"snapshot {manifest.snapshot_id} is corrupt in target {storage.name}: {corrupt}"
        ) from None
    except HoldfastError as exc:
        logger.info("could not re-check %s after a failed restore: %s", manifest.data_key, exc)


def _undo(
    runtime: ContainerRuntime, container: DatabaseContainer | None, volumes: list[str]
) -> None:
    if container is not None:
        try:
            runtime.remove_container(container.id)
        except HoldfastError as exc:
            logger.error("could not remove container %s: %s", container.name, exc)
    for volume in volumes:
        try:
            runtime.remove_volume(volume)
        except HoldfastError as exc:
            logger.error("could not remove volume %s: %s", volume, exc)


def _one_line(text: str) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())[-300:]
