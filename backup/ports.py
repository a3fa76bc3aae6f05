"""The narrow interfaces the domain needs from a container runtime.

Engines and the restore runner talk to containers only through these
protocols; ``service.adapters.docker`` implements them with docker-py. Keeping them this
small is what lets the domain be tested with fakes and keeps docker-py out of
``backup/`` and ``restore/``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from backup.types import DatabaseContainer


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: str


class ContainerExec(Protocol):
    """Runs commands inside a running container.

    Secrets go in ``env``, which is passed through the exec API and never shows
    on a process command line; ``argv`` must never contain one.
    """

    def stream(
        self,
        container_id: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        stdin: Iterable[bytes] | None = None,
    ) -> Iterator[bytes]:
        """Start ``argv`` and yield its stdout as it arrives, while a thread of
        the adapter writes ``stdin`` (if given) to it and then closes its input:
        a conversation with a process, such as a ``psql`` session sent one
        statement at a time as the answers to the last ones come back.

        After the last chunk, if the process exited non-zero or its stream broke,
        the iterator raises :class:`~backup.errors.ExecFailed` carrying the tail of
        stderr, so a consumer that commits only after exhausting the iterator
        never commits a truncated dump. If ``stdin`` raises, the connection is
        cut and the iterator raises that exception. Closing the iterator early
        closes the connection. Raises :class:`~backup.errors.DockerUnavailable`
        if the engine cannot be reached.
        """
        ...

    def run(
        self,
        container_id: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        stdin: Iterable[bytes] | None = None,
        check: bool = True,
        output_limit: int = 1024 * 1024,
    ) -> ExecResult:
        """Run ``argv`` to completion, feeding it ``stdin`` chunks if given.

        stdout is kept up to ``output_limit`` bytes (the rest is drained and
        dropped, so a chatty process never blocks). With ``check`` a non-zero
        exit raises :class:`~backup.errors.ExecFailed`. The caller owns ``stdin``;
        if it raises, the process is cut off and the exception propagates.
        """
        ...


@dataclass(frozen=True)
class VolumeSpec:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PublishedPort:
    """A container port published on the host: ``host_port`` 0 lets the engine
    choose a free one (the port it chose is in :class:`ContainerEndpoints`)."""

    container_port: int
    host_port: int = 0
    host_ip: str = "127.0.0.1"
    protocol: str = "tcp"

    @property
    def key(self) -> str:
        """Docker's name of the container side, e.g. ``5432/tcp``."""
        return f"{self.container_port}/{self.protocol}"


@dataclass(frozen=True)
class NetworkEndpoint:
    """A container's place on one network: its address and its DNS aliases there."""

    ip_address: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContainerEndpoints:
    """Where a running container can be reached: per network, and per published
    port (``"5432/tcp"`` -> the host addresses it is bound to, as ``(ip, port)``)."""

    networks: Mapping[str, NetworkEndpoint] = field(default_factory=dict)
    ports: Mapping[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class VolumeCopy:
    """How :meth:`ContainerRuntime.copy_volume` filled its target: ``reflink``
    (the files share their blocks with the source's until either is written)
    or ``copy`` (every byte copied), with ``note`` saying why not reflinks."""

    method: str
    note: str | None = None


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to create a container; the restore planner's output."""

    name: str
    image: str
    env: Mapping[str, str]
    volumes: Mapping[str, str]  # volume name -> mount destination
    labels: Mapping[str, str] = field(default_factory=dict)
    networks: tuple[str, ...] = ()
    command: tuple[str, ...] | None = None
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Network name -> extra DNS aliases of the container on it (one of ``networks``)."""
    published: tuple[PublishedPort, ...] = ()


class ContainerRuntime(Protocol):
    """Creates and removes containers and volumes."""

    def container_name_taken(self, name: str) -> bool: ...

    def volume_exists(self, name: str) -> bool: ...

    def image_exists(self, image: str) -> bool: ...

    def create_volume(self, spec: VolumeSpec) -> None:
        """Create a named volume. Raises :class:`~backup.errors.NameTaken` if it exists."""
        ...

    def start_container(self, spec: ContainerSpec) -> DatabaseContainer:
        """Create and start a container. Raises :class:`~backup.errors.NameTaken`
        if the name is in use; the container is removed again if it cannot start."""
        ...

    def create_container(self, spec: ContainerSpec) -> DatabaseContainer:
        """Create a container without starting it (``running`` is False), so
        data can be loaded into its volumes first. Raises
        :class:`~backup.errors.NameTaken` if the name is in use."""
        ...

    def start(self, container_id: str) -> DatabaseContainer:
        """Start an existing container and return its state. Raises
        :class:`~backup.errors.NotFound`; starting a running one is a no-op."""
        ...

    def inspect(self, container_id: str) -> DatabaseContainer:
        """Current state of a container; raises :class:`~backup.errors.NotFound`."""
        ...

    def logs_tail(self, container_id: str, lines: int = 20) -> str: ...

    def remove_container(self, container_id: str) -> None:
        """Force-remove a container; a missing one is not an error."""
        ...

    def remove_volume(self, name: str) -> None:
        """Remove a volume; a missing one is not an error. Raises
        :class:`~backup.errors.VolumeInUse` while a container mounts it."""
        ...

    def empty_volume(self, name: str) -> None:
        """Delete everything inside an existing volume (``--force`` restores).
        Raises :class:`~backup.errors.ExecFailed` if that fails."""
        ...

    def copy_volume(self, source: str, target: str) -> VolumeCopy:
        """Make the volume ``target`` (emptied first) an exact copy of ``source`` (owners,
        modes, links, holes), with reflinks where the engine's filesystem has
        them, else by copying; ``source`` is only read. Writes to either never
        reach the other. Raises :class:`~backup.errors.ExecFailed` if it fails,
        leaving ``target`` partly written (the caller removes it)."""
        ...


@runtime_checkable
class HelperContainers(Protocol):
    """Runs commands in short-lived helper containers, for work on volumes
    that must not depend on the tools inside the user's image.

    The helper image is the implementation's choice (configured by the
    service); it provides ``sh`` and GNU ``tar``. A helper has no network and
    runs as root. Every helper container is removed when its call returns or
    its stream is closed, also on failure.

    Engines that need this (the ``volume`` engine) receive it as the same
    object as their :class:`ContainerExec` and check with ``isinstance``.
    """

    def helper_stream(
        self, argv: Sequence[str], *, volumes_from: str | None = None,
        volumes: Mapping[str, str] | None = None, read_only: bool = True,
    ) -> Iterator[bytes]:
        """Run ``argv`` in a helper that mounts every mount of container
        ``volumes_from`` at the same paths, and/or the named ``volumes``
        (name -> destination); yield its stdout. Raises
        :class:`~backup.errors.ExecFailed` after the last chunk on a non-zero
        exit, like :meth:`ContainerExec.stream`. Closing the iterator early
        stops and removes the helper."""
        ...

    def helper_run(
        self, argv: Sequence[str], *, volumes_from: str | None = None,
        volumes: Mapping[str, str] | None = None, read_only: bool = False,
        stdin: Iterable[bytes] | None = None, check: bool = True,
    ) -> ExecResult:
        """Run ``argv`` to completion in a helper (mounts as for
        :meth:`helper_stream`), feeding ``stdin``; raises
        :class:`~backup.errors.ExecFailed` on a non-zero exit when ``check``."""
        ...

    def stop_container(self, container_id: str, timeout: float = 30) -> None:
        """Stop a running container (SIGTERM, then SIGKILL after ``timeout``).
        Raises :class:`~backup.errors.NotFound`."""
        ...

    def start(self, container_id: str) -> DatabaseContainer:
        """Start a stopped container again; see :meth:`ContainerRuntime.start`."""
        ...
