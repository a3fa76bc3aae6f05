"""The ports the service layer talks to: the Docker engine and the catalog.

The domain's own ports (:mod:`backup.ports` for exec, runtime and helper
containers, :class:`backup.storage.Storage` for targets) cover what engines and
the restore runner need. The use cases need a little more of Docker
(discovery, volumes, events) and a catalog; those protocols live here. The real
adapters (:mod:`service.adapters.docker`, :mod:`service.adapters.catalog`) and
the in-memory fakes of the Docker-free test tier both satisfy them, which is
what lets every use case run without an engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from backup.ports import ContainerExec, ContainerRuntime, HelperContainers
from backup.types import DatabaseContainer, Snapshot, SnapshotStatus
from backup.volumes import VolumeInfo
from service.records import InstanceRecord, JobRecord, JobStatus


class ContainerEvents(Protocol):
    """An open stream of container lifecycle events."""

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """Yield ``(action, container_id)`` for start, die, destroy and rename,
        blocking until one arrives. Ends or raises
        :class:`~backup.errors.DockerUnavailable` when the engine goes away."""
        ...

    def close(self) -> None:
        """End the iteration, from any thread; closing twice is harmless."""
        ...


class ContainerDiscovery(Protocol):
    """Finds and inspects the containers Holdfast may manage."""

    def ping(self) -> None:
        """Return if the engine answers; raise :class:`~backup.errors.DockerUnavailable`."""
        ...

    def labelled_containers(self, include_stopped: bool = True) -> list[DatabaseContainer]:
        """Every container carrying a ``holdfast.enable`` label (any value), inspected."""
        ...

    def stopped_at(self, container_id: str) -> datetime | None:
        """When a stopped container last stopped; None while it runs.
        Raises :class:`~backup.errors.NotFound`."""
        ...

    def binaries_present(self, container_id: str, names: Sequence[str]) -> set[str]:
        """Which of ``names`` are on the running container's PATH."""
        ...

    def container_names(self) -> set[str]:
        """Names of every container, running or not."""
        ...

    def container_events(self) -> ContainerEvents:
        """Subscribe to lifecycle events of labelled containers."""
        ...

    def abort_streams(self) -> int:
        """Cut every exec stream in flight (shutdown); return how many."""
        ...

    def close(self) -> None:
        """Release the connection; the next call reconnects."""
        ...


class VolumeAdmin(Protocol):
    """Named volumes as users see them: listed with users and sizes, copied."""

    def volume_names(self) -> set[str]: ...

    def list_volumes(self, sizes: bool = True) -> list[VolumeInfo]:
        """Every volume with the containers using it; ``sizes`` measures them (slow)."""
        ...

    def get_volume(self, name: str, size: bool = False) -> VolumeInfo | None:
        """One volume, or None if there is none of that name."""
        ...

    def remove_unused_volume(self, name: str) -> None:
        """Remove a volume. Raises :class:`~backup.errors.VolumeNotFound`, and
        :class:`~backup.errors.VolumeInUse` if a container mounts it."""
        ...

    def copy_volume(self, source: str, target: str) -> None:
        """Make ``target`` an exact copy of ``source`` (emptied first)."""
        ...

    def remove_orphan_helpers(self) -> list[str]:
        """Remove helper containers whose Holdfast process is gone; return their ids."""
        ...


class DockerEngine(ContainerExec, ContainerRuntime, HelperContainers, ContainerDiscovery,
                   VolumeAdmin, Protocol):
    """Everything the service needs of one Docker engine."""


class CatalogPort(Protocol):
    """What Holdfast remembers: instances, snapshots and jobs, as plain records.

    Every method raises :class:`~service.adapters.catalog.CatalogUnavailable`
    when the database cannot be reached.
    """

    def ping(self) -> None: ...

    def close(self) -> None: ...

    def upsert_instance(self, rec: InstanceRecord) -> None: ...

    def get_instance(self, name: str) -> InstanceRecord | None: ...

    def list_instances(self) -> list[InstanceRecord]: ...

    def set_policy_override(self, name: str, policy: Mapping[str, Any] | None) -> None:
        """Store (or, with None, clear) an instance's API-set policy.
        Raises :class:`~backup.errors.InstanceNotFound`."""
        ...

    def add_snapshot(self, s: Snapshot) -> None:
        """Insert a new snapshot; raises :class:`~backup.errors.Conflict` if its id exists."""
        ...

    def save_snapshot(self, s: Snapshot) -> None:
        """Insert or replace a snapshot."""
        ...

    def get_snapshot(self, id: str) -> Snapshot | None: ...

    def list_snapshots(self, instance: str | None = None,
                       status: SnapshotStatus | None = None) -> list[Snapshot]:
        """Snapshots, newest first, optionally of one instance and one status."""
        ...

    def latest_snapshot(self, instance: str) -> Snapshot | None:
        """The newest snapshot of ``instance`` in any status, if any."""
        ...

    def snapshots_with_prefix(self, prefix: str, limit: int) -> list[Snapshot]:
        """At most ``limit`` snapshots whose id starts with ``prefix`` (compared
        exactly: case-sensitive, ``%`` and ``_`` are plain characters), by id."""
        ...

    def delete_snapshot(self, id: str) -> bool:
        """Remove a snapshot row; False if there was none."""
        ...

    def add_job(self, j: JobRecord) -> None: ...

    def save_job(self, j: JobRecord) -> None: ...

    def get_job(self, id: str) -> JobRecord | None: ...

    def list_jobs(self, limit: int = 100,
                  statuses: Iterable[JobStatus] | None = None) -> list[JobRecord]:
        """The newest ``limit`` jobs, optionally only those in ``statuses``."""
        ...
