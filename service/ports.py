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

import os
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from backup.alerts import Alarm, Condition
from backup.ports import (
    ContainerEndpoints,
    ContainerExec,
    ContainerRuntime,
    HelperContainers,
    VolumeCopy,
)
from backup.types import DatabaseContainer, Snapshot, SnapshotStatus
from backup.volumes import VolumeInfo
from restore.copies import CopyRecord
from restore.swap import ContainerSettings, RestartPolicy
from service.fleet_ports import FleetWorkQueue, HostRegistry
from service.records import Delivery, DeliveryStatus, InstanceRecord, JobRecord, JobStatus, Message
from service.tokens import TokenRecord

SCOPE_LABEL = "holdfast.scope"
"""A container labelled ``holdfast.scope=<value>`` belongs to the Holdfast run
with ``HOLDFAST_SCOPE=<value>`` (see :func:`in_scope`)."""


def in_scope(labels: Mapping[str, str], scope: str | None) -> bool:
    """Whether a container with ``labels`` is managed by a Holdfast of ``scope``.

    With a scope, only containers labelled ``holdfast.scope=<scope>``; without
    one, only containers with no (or an empty) ``holdfast.scope`` label: a scope
    label gives the container to that scope's daemon alone, so the default,
    unscoped daemon on a shared engine does not back it up a second time.
    """
    value = (labels.get(SCOPE_LABEL) or "").strip() or None
    return value is None if scope is None else value == scope


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

    def engine_identity(self) -> tuple[str, str]:
        """``(name, version)`` of the engine: ``docker info``'s ``Name`` (its
        machine's hostname; may be empty) and ``ServerVersion``."""
        ...

    def labelled_containers(self, include_stopped: bool = True,
                            scope: str | None = None) -> list[DatabaseContainer]:
        """Every container carrying a ``holdfast.enable`` label (any value) and in
        ``scope`` (:func:`in_scope`), inspected."""
        ...

    def containers_labelled(self, label: str, value: str | None = None
                            ) -> list[DatabaseContainer]:
        """Every container, running or not, carrying ``label`` (with ``value``,
        if given), inspected; what Holdfast made itself (warm copies) is found so."""
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

    def container_events(self, scope: str | None = None) -> ContainerEvents:
        """Subscribe to lifecycle events of labelled containers in ``scope``
        (:func:`in_scope`); other containers' events are not yielded."""
        ...

    def abort_streams(self, holder: str | None = None) -> int:
        """Cut every exec stream in flight (shutdown), or only those of
        ``holder`` (a cancelled job), whose later execs then fail at once;
        the cut processes do not linger in their containers. Returns how many
        were cut."""
        ...

    def exec_holder(self, holder: str) -> AbstractContextManager[None]:
        """A block in which the execs this thread starts (directly or in
        helpers) belong to ``holder``, a job id, for :meth:`abort_streams`."""
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

    def copy_volume(self, source: str, target: str) -> VolumeCopy:
        """Make ``target`` an exact copy of ``source`` (emptied first), with
        reflinks where the engine's filesystem has them; says which."""
        ...

    def remove_orphan_helpers(self) -> list[str]:
        """Remove helper containers whose Holdfast process is gone; return their ids."""
        ...


class ImageSupply(Protocol):
    """Images on the engine, pulled when missing."""

    def ensure_image(self, image: str) -> None:
        """Return once ``image`` is on the engine, pulling it first if it is
        missing, as ``docker run`` does, with progress logged at INFO. Raises
        :class:`~backup.errors.ImagePullFailed` (an ImageNotFound) carrying the
        engine's reason when it cannot be pulled (no registry, no such tag, no
        access). Helper containers call this for the helper image themselves."""
        ...


class Networking(Protocol):
    """Networks a restore joins, and where a container it made can be reached."""

    def network_exists(self, name: str) -> bool: ...

    def network_internal(self, name: str) -> bool:
        """True if the network ``name`` exists and is internal (``docker network
        create --internal``): Docker publishes no port of a container created on
        one, silently (moby/moby#36174). False for any other network or none."""
        ...

    def create_network(self, name: str, *, internal: bool,
                       labels: Mapping[str, str]) -> None:
        """Create a bridge network (``internal``: no route off the host, as
        ``docker network create --internal``). Raises
        :class:`~backup.errors.NameTaken` if one of that name exists."""
        ...

    def remove_network(self, name: str) -> None:
        """Remove a network; a missing one is not an error. Containers still on
        it make this fail (:class:`~backup.errors.DockerRefused`)."""
        ...

    def labelled_networks(self, label: str) -> dict[str, dict[str, str]]:
        """Networks carrying ``label`` (any value): name -> all their labels."""
        ...

    def published_host_ports(self) -> set[tuple[str, int]]:
        """``(host ip, host port)`` of every port a running container publishes
        (host processes' ports are not seen: starting then fails with
        :class:`~backup.errors.PortTaken`)."""
        ...

    def container_endpoints(self, container_id: str) -> ContainerEndpoints:
        """The container's address and aliases on each network and the host
        addresses of its published ports. Raises :class:`~backup.errors.NotFound`."""
        ...


class Swapping(Protocol):
    """What a swap-in restore (``replace``) and its undo need beyond creating,
    starting and stopping containers (:mod:`restore.swap`)."""

    def container_settings(self, container_id: str) -> ContainerSettings:
        """The container's networks with the aliases given there, its published
        ports as configured (an engine-chosen host port pinned to the one it is
        bound to while running) and its restart policy. Raises
        :class:`~backup.errors.NotFound`."""
        ...

    def rename_container(self, container_id: str, new_name: str) -> None:
        """Give the container another name (running or not). Raises
        :class:`~backup.errors.NotFound`, and :class:`~backup.errors.NameTaken`
        if another container has ``new_name``."""
        ...

    def set_restart_policy(self, container_id: str, policy: RestartPolicy) -> None:
        """Change the container's restart policy (running or not). Raises
        :class:`~backup.errors.NotFound`."""
        ...


class DockerEngine(ContainerExec, ContainerRuntime, HelperContainers, ContainerDiscovery,
                   VolumeAdmin, ImageSupply, Networking, Swapping, Protocol):
    """Everything the service needs of one Docker engine."""


class TokenStore(Protocol):
    """API tokens as :class:`~service.tokens.TokenRecord`: kept by name, found by
    the sha256 of their secret (the secret itself is never stored)."""

    def add_token(self, t: TokenRecord) -> None:
        """Record a new token; raises :class:`~backup.errors.NameTaken` if a token
        of that name (or, by a miracle, that hash) exists."""
        ...

    def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        """The token whose secret hashes to ``token_hash``, expired or not."""
        ...

    def list_tokens(self) -> list[TokenRecord]:
        """Every token, expired ones included, by name."""
        ...

    def delete_token(self, name: str) -> bool:
        """Remove the token ``name`` (revoked at once); False if there was none."""
        ...

    def touch_token(self, name: str, at: datetime) -> None:
        """Set the token's ``last_used_at`` to ``at``; a token gone is no error."""
        ...


class NotificationLog(Protocol):
    """Notification deliveries (their latest state) and the alarms open now."""

    def save_delivery(self, d: Delivery) -> None:
        """Insert or replace the delivery with ``d.id`` (its first ``created_at`` stays)."""
        ...

    def list_deliveries(self, limit: int = 100, *, destination: str | None = None,
                        event: str | None = None, instance: str | None = None,
                        status: DeliveryStatus | None = None) -> list[Delivery]:
        """The newest ``limit`` deliveries (by ``created_at``, then id,
        descending), optionally only those matching every filter given."""
        ...

    def prune_deliveries(self, keep: int) -> int:
        """Forget all but the newest ``keep`` deliveries (ties at the cut go
        too); returns how many were removed."""
        ...

    def get_alarm(self, condition: Condition, subject: str) -> Alarm | None: ...

    def save_alarm(self, a: Alarm) -> None:
        """Open or update the alarm of ``(a.condition, a.subject)``."""
        ...

    def clear_alarm(self, condition: Condition, subject: str) -> bool:
        """Close that alarm; False if none was open."""
        ...

    def list_alarms(self) -> list[Alarm]:
        """Every open alarm, by condition and subject."""
        ...


class CatalogPort(TokenStore, NotificationLog, HostRegistry, FleetWorkQueue, Protocol):
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
                       status: SnapshotStatus | None = None,
                       tags: Mapping[str, str] | None = None) -> list[Snapshot]:
        """Snapshots, newest first, optionally of one instance and one status,
        and carrying every tag in ``tags`` (key and value compared exactly)."""
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

    def forget_instance(self, name: str) -> tuple[bool, list[str]]:
        """Remove the instance row of ``name`` (its policy with it) and every
        snapshot row of that instance, in one transaction; jobs stay as history.
        Returns whether there was an instance row and the ids of the snapshot
        rows removed (oldest first). Storage objects are not the catalog's."""
        ...

    def add_job(self, j: JobRecord) -> None:
        """Insert a new job; raises :class:`~backup.errors.Conflict` if its id, or
        its ``idempotency_key`` (unique when set), is recorded already."""
        ...

    def save_job(self, j: JobRecord) -> None:
        """Insert or replace a job, every field (progress included) but those the
        fleet's work queue keeps: its lease, an ``interrupted`` status another
        daemon set, and ``cancel_requested_at`` (never written from ``j``)."""
        ...

    def get_job(self, id: str) -> JobRecord | None: ...

    def job_with_idempotency_key(self, key: str) -> JobRecord | None:
        """The job submitted with ``key`` (compared exactly), if any."""
        ...

    def list_jobs(self, limit: int = 100, statuses: Iterable[JobStatus] | None = None,
                  kind: str | None = None, instance: str | None = None) -> list[JobRecord]:
        """The newest ``limit`` jobs (by ``created_at``, then id, descending),
        optionally only those in ``statuses``, of ``kind`` and of ``instance``."""
        ...

    # --- copies: the containers restores created (restore.copies.CopyRecord) ------

    def add_copy(self, c: CopyRecord) -> None:
        """Record a copy; raises :class:`~backup.errors.Conflict` if one with its
        container id is recorded already."""
        ...

    def save_copy(self, c: CopyRecord) -> None:
        """Replace the copy recorded with ``c.container_id`` (its TTL, its removal)."""
        ...

    def live_copies(self, name: str | None = None) -> list[CopyRecord]:
        """Copies not yet removed (``removed_at`` unset), optionally only those
        named ``name``, newest first."""
        ...


@dataclass(frozen=True)
class DaemonOwner:
    """Who holds a :class:`DaemonLock`: enough for a person to find the process."""

    host: str
    pid: int
    since: datetime

    @classmethod
    def of_this_process(cls) -> DaemonOwner:
        return cls(host=socket.gethostname(), pid=os.getpid(), since=datetime.now(UTC))

    def describe(self) -> str:
        return f"host {self.host}, pid {self.pid}, since {self.since:%Y-%m-%dT%H:%M:%SZ}"


class DaemonLock(Protocol):
    """One ``holdfast serve`` per data directory and catalog.

    Held for the daemon's lifetime, and released by the operating system or the
    database server when the process dies, however it dies (SIGKILL included), so
    a crashed daemon never blocks the next start.
    """

    def acquire(self, owner: DaemonOwner) -> None:
        """Take the lock for ``owner`` without waiting, or raise
        :class:`~backup.errors.DaemonAlreadyRunning` naming the current holder
        (:class:`~service.adapters.catalog.CatalogUnavailable` if a catalog lock
        cannot be reached)."""
        ...

    def release(self) -> None:
        """Give the lock up; releasing one not held is harmless."""
        ...


class Sender(Protocol):
    def send(self, message: Message) -> None:
        """Deliver ``message`` once, within the sender's own timeout. Raises
        :class:`~backup.errors.DeliveryFailed` with a one-line reason that
        names no secret (no URL path, token or password)."""


class Postbox(Protocol):
    def put(self, destination: str, message: Message) -> Delivery:
        """Queue ``message`` for ``destination`` and return at once with its
        record; never raises for a destination that is down (the outbox retries)."""
        ...


class PingRoutes(Protocol):
    def ping_destination(self, instance: str, url: str) -> str:
        """Remember ``url`` as ``instance``'s dead-man ping URL; returns the
        destination name its pings are put under (``ping:<instance>``, never the URL)."""
        ...


class SenderRoutes(PingRoutes, Protocol):
    """Destination name -> its sender: a channel's name, or ``ping:<instance>``."""

    def __call__(self, destination: str) -> Sender:
        """The sender for ``destination``; raises
        :class:`~backup.errors.DeliveryFailed` for a name that is not configured."""
        ...
